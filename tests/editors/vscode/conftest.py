"""Shared by the VS Code extension's tests: its folder, and `npm ci` run once when its lock
file changed (node_modules is stamped with the lock file's hash, as scripts/install_vscode_e2e.sh
does), skipping the tests only when npm's registry cannot be reached."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXTENSION = ROOT / "editors" / "vscode"


def npm_registry_reachable() -> bool:
    try:
        return subprocess.run(["npm", "ping"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def extension_dir() -> Path:
    """editors/vscode with its node_modules installed (npm ci, once per lock file)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the VS Code extension's tests (Node >= 20)")
    lock_hash = hashlib.sha256((EXTENSION / "package-lock.json").read_bytes()).hexdigest()[:16]
    stamp = EXTENSION / "node_modules" / ".stamp"
    if not stamp.exists() or stamp.read_text().strip() != lock_hash:
        ci = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=EXTENSION,
                            capture_output=True, text=True, timeout=900)
        if ci.returncode != 0:
            if not npm_registry_reachable():
                pytest.skip("the npm registry cannot be reached: `npm ci` for editors/vscode "
                            "could not install the extension's dependencies")
            pytest.fail(f"npm ci failed in editors/vscode:\n{ci.stdout[-3000:]}\n{ci.stderr[-3000:]}")
        stamp.write_text(lock_hash + "\n")
    return EXTENSION
