import assert from "node:assert/strict";
import { test } from "node:test";

import { CommandLookup, expandPath, isEnabledFor, resolveServerCommand, toServerOptions } from "../settings";

const env = { home: "/home/u", workspaceFolder: "/work/proj", env: { MODELS: "/models" } };
const reader = (values: Record<string, unknown>) => (key: string) => values[key];

test("each setting becomes the server option of the same meaning", () => {
  const options = toServerOptions(
    reader({
      engine: "diffusion",
      "model.target": "/m/target",
      "model.draft": "/m/draft",
      "model.diffusion": "/m/diff",
      "model.fimFormat": "qwen",
      "model.diffusionFamily": "llada",
      "model.trustRemoteCode": true,
      drafter: "ngram",
      device: "cuda:1",
      dtype: "bfloat16",
      maxTokens: 128,
      multiline: "never",
      debounceMs: 0,
      timeoutMs: 2000,
      contextChars: 4096,
      logEvents: false,
    }),
    env,
  );
  assert.deepEqual(options, {
    engine: "diffusion",
    target: "/m/target",
    draft: "/m/draft",
    diffusion: "/m/diff",
    fimFormat: "qwen",
    diffusionFamily: "llada",
    trustRemoteCode: true,
    drafter: "ngram",
    device: "cuda:1",
    dtype: "bfloat16",
    maxTokens: 128,
    multiline: "never",
    debounceMs: 0,
    timeoutMs: 2000,
    contextChars: 4096,
    logEvents: false,
  });
});

test("the defaults of package.json map to the server's documented defaults", () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const manifest = require("../../package.json");
  const properties = manifest.contributes.configuration.properties as Record<string, { default: unknown }>;
  const options = toServerOptions((key) => properties[`infill.${key}`]?.default, env);
  assert.deepEqual(options, {
    engine: "auto",
    target: null,
    draft: null,
    diffusion: null,
    fimFormat: null,
    diffusionFamily: null,
    trustRemoteCode: false,
    drafter: "auto",
    device: null,
    dtype: null,
    maxTokens: 64,
    multiline: "auto",
    debounceMs: null,
    timeoutMs: 10000,
    contextChars: 8000,
    logEvents: true,
  });
});

test("empty and auto mean: let the server decide (null)", () => {
  const options = toServerOptions(
    reader({ "model.target": "  ", device: "auto", dtype: "", "model.fimFormat": "auto" }),
    env,
  );
  assert.deepEqual(options, { target: null, device: null, dtype: null, fimFormat: null });
});

test("a setting that reads as undefined is left out, so the server keeps its value", () => {
  assert.deepEqual(toServerOptions(reader({ maxTokens: 32 }), env), { maxTokens: 32 });
  assert.deepEqual(toServerOptions(reader({}), env), {});
});

test("invalid values pass through unchanged: the server validates and warns", () => {
  const options = toServerOptions(reader({ maxTokens: "many", engine: "turbo", device: "tpu" }), env);
  assert.deepEqual(options, { maxTokens: "many", engine: "turbo", device: "tpu" });
});

test("model folders expand ~, ${userHome}, ${workspaceFolder} and ${env:NAME}; repo ids stay", () => {
  const options = toServerOptions(
    reader({
      "model.target": "~/models/coder",
      "model.draft": "${workspaceFolder}/draft",
      "model.diffusion": "${env:MODELS}/llada",
    }),
    env,
  );
  assert.deepEqual(options, { target: "/home/u/models/coder", draft: "/work/proj/draft", diffusion: "/models/llada" });
  assert.equal(expandPath("Qwen/Qwen2.5-Coder-1.5B", env), "Qwen/Qwen2.5-Coder-1.5B");
  assert.equal(expandPath("${userHome}/x", env), "/home/u/x");
  assert.equal(expandPath("~user/x", env), "~user/x");
});

test("enable per language: the language's own entry, else '*', else on", () => {
  const enable = { "*": true, plaintext: false, markdown: false };
  assert.equal(isEnabledFor("python", enable), true);
  assert.equal(isEnabledFor("plaintext", enable), false);
  assert.equal(isEnabledFor("python", { "*": false, python: true }), true);
  assert.equal(isEnabledFor("go", { "*": false, python: true }), false);
  assert.equal(isEnabledFor("go", {}), true);
  assert.equal(isEnabledFor("go", undefined), true);
  assert.equal(isEnabledFor("go", false), false);
  assert.equal(isEnabledFor("go", { go: "yes" }), true); // not a boolean: ignored
});

function lookup(executables: string[], pathDirs = ["/usr/bin", "/bin"], workspaceFolders: string[] = []): CommandLookup {
  return { ...env, pathDirs, workspaceFolders, isExecutable: (p) => executables.includes(p) };
}

test("server command: infill.server.path first, with serve and the extra args", () => {
  const result = resolveServerCommand(
    reader({ "server.path": "~/venv/bin/infill", "server.pythonPath": "/usr/bin/python3", "server.args": ["--log-file", "/tmp/l"] }),
    lookup(["/home/u/venv/bin/infill", "/usr/bin/python3"]),
  );
  assert.deepEqual(result, {
    ok: true,
    server: { command: "/home/u/venv/bin/infill", args: ["serve", "--log-file", "/tmp/l"], source: "infill.server.path" },
  });
});

test("server command: pythonPath runs python -m infill.cli serve (a bare name is looked up on PATH)", () => {
  assert.deepEqual(resolveServerCommand(reader({ "server.pythonPath": "/opt/py/bin/python" }), lookup(["/opt/py/bin/python"])), {
    ok: true,
    server: { command: "/opt/py/bin/python", args: ["-m", "infill.cli", "serve"], source: "infill.server.pythonPath" },
  });
  const bare = resolveServerCommand(reader({ "server.pythonPath": "python3" }), lookup(["/bin/python3"]));
  assert.equal(bare.ok && bare.server.command, "/bin/python3");
});

test("server command: infill on PATH, then a workspace .venv", () => {
  const onPath = resolveServerCommand(reader({}), lookup(["/bin/infill", "/work/proj/.venv/bin/infill"], ["/usr/bin", "/bin"], ["/work/proj"]));
  assert.deepEqual(onPath.ok && onPath.server, { command: "/bin/infill", args: ["serve"], source: "PATH" });
  const inVenv = resolveServerCommand(reader({}), lookup(["/work/proj/.venv/bin/infill"], ["/usr/bin"], ["/work/proj"]));
  assert.deepEqual(inVenv.ok && inVenv.server, { command: "/work/proj/.venv/bin/infill", args: ["serve"], source: "workspace .venv" });
});

test("server command: a missing executable is a problem that names the fix", () => {
  const none = resolveServerCommand(reader({}), lookup([]));
  assert.equal(none.ok, false);
  assert.match(!none.ok ? none.problem : "", /not found.*infill\.server\.path.*infill\.server\.pythonPath/s);
  const badPath = resolveServerCommand(reader({ "server.path": "/nope/infill" }), lookup([]));
  assert.match(!badPath.ok ? badPath.problem : "", /infill\.server\.path is \/nope\/infill, which is not an executable/);
  const badPython = resolveServerCommand(reader({ "server.pythonPath": "/nope/python" }), lookup([]));
  assert.match(!badPython.ok ? badPython.problem : "", /infill\.server\.pythonPath is \/nope\/python/);
});
