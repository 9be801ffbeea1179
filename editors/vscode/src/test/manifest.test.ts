import assert from "node:assert/strict";
import { test } from "node:test";

import { CLIENT_SETTINGS, SERVER_SETTINGS } from "../settings";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const manifest = require("../../package.json");

test("every contributed setting is either sent to the server or used by the extension", () => {
  const contributed = Object.keys(manifest.contributes.configuration.properties).map((k) => k.replace(/^infill\./, ""));
  const known = [...Object.keys(SERVER_SETTINGS), ...CLIENT_SETTINGS];
  assert.deepEqual([...contributed].sort(), [...known].sort());
});

test("the commands the issue asks for are contributed", () => {
  const commands = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
  assert.deepEqual(commands, ["infill.restartServer", "infill.showLog", "infill.showStatus", "infill.toggle"]);
});

test("the engine is compatible with vscode-languageclient 11 (which needs VS Code 1.91)", () => {
  assert.equal(manifest.engines.vscode, "^1.91.0");
  assert.equal(manifest.dependencies["vscode-languageclient"].split(".")[0], "11");
});
