"""The VS Code extension's unit tests (`npm test`: settings -> server options, the server
command, the status bar), and the contract between its settings and the server's options:
every value the settings UI offers is one lsp_server/options.py accepts, and the defaults agree."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict

import pytest

from lsp_server.options import ServerOptions, parse_options


def test_npm_test_passes(extension_dir):
    result = subprocess.run(["npm", "test"], cwd=extension_dir, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"npm test failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert "# fail 0" in result.stdout


MAP_SETTINGS = r"""
const { toServerOptions } = require("./out/settings.js");
const manifest = require("./package.json");
const properties = manifest.contributes.configuration.properties;
const env = { home: "/home/u", workspaceFolder: "/w" };
const defaults = (key) => properties[`infill.${key}`]?.default;
const cases = [{ setting: null, options: toServerOptions(defaults, env) }];
for (const [name, property] of Object.entries(properties)) {
  for (const value of [...(property.enum ?? []), ...(property.examples ?? [])]) {
    const key = name.replace(/^infill\./, "");
    cases.push({ setting: `${name}=${value}`,
                 options: toServerOptions((k) => (k === key ? value : defaults(k)), env) });
  }
}
console.log(JSON.stringify(cases));
"""


@pytest.fixture(scope="module")
def mapped_settings(extension_dir) -> list[dict]:
    """Each settings case mapped by the extension's own code (compiled to out/)."""
    subprocess.run(["npx", "tsc", "-p", "."], cwd=extension_dir, check=True, capture_output=True,
                   timeout=300)
    out = subprocess.run(["node", "-e", MAP_SETTINGS], cwd=extension_dir, check=True,
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def test_settings_defaults_are_the_server_defaults(mapped_settings):
    [defaults, *_] = mapped_settings
    options, warnings = parse_options({"infill": defaults["options"]})
    assert warnings == []
    assert asdict(options) == asdict(ServerOptions())


def test_every_offered_setting_value_is_accepted_by_the_server(mapped_settings):
    cases = mapped_settings[1:]
    assert len(cases) > 10
    for case in cases:
        _, warnings = parse_options({"infill": case["options"]})
        assert warnings == [], (case["setting"], warnings)
