/**
 * The extension's settings and what they become: the server's options, the server command,
 * and whether a language gets completions. Pure functions, no `vscode` import, so the unit
 * tests run under plain Node.
 *
 * The server (lsp_server/options.py) is the one place that validates options: a value it
 * rejects is reported by the server (a warning pop-up) and its documented default is used.
 * So this mapping only renames keys and normalises the "nothing chosen" spellings ("" and
 * "auto") to null; it never second-guesses a value.
 */

/** `infill.<setting>` -> the server's option key (camelCase, as lsp_server/options.py reads). */
export const SERVER_SETTINGS: Readonly<Record<string, string>> = {
  engine: "engine",
  "model.target": "target",
  "model.draft": "draft",
  "model.diffusion": "diffusion",
  "model.fimFormat": "fimFormat",
  "model.diffusionFamily": "diffusionFamily",
  "model.trustRemoteCode": "trustRemoteCode",
  drafter: "drafter",
  device: "device",
  dtype: "dtype",
  maxTokens: "maxTokens",
  multiline: "multiline",
  debounceMs: "debounceMs",
  timeoutMs: "timeoutMs",
  contextChars: "contextChars",
  logEvents: "logEvents",
};

/** Settings the extension itself uses; they never reach the server's options. */
export const CLIENT_SETTINGS: readonly string[] = [
  "enable",
  "server.path",
  "server.pythonPath",
  "server.args",
  "trace.server",
];

/** Settings that hold a folder (or a cached Hugging Face repo id): `~` and variables expand. */
const PATH_SETTINGS = new Set(["model.target", "model.draft", "model.diffusion"]);
/** Settings where "" and "auto" both mean "let the server decide" (null). */
const AUTO_SETTINGS = new Set(["device", "dtype", "model.fimFormat", "model.diffusionFamily"]);

export type ServerOptions = Record<string, unknown>;

/** Reads one setting below `infill.` (vscode's WorkspaceConfiguration.get, or a test's map). */
export type SettingReader = (key: string) => unknown;

export interface Environment {
  home: string;
  /** The first workspace folder's path, for `${workspaceFolder}`. */
  workspaceFolder?: string;
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The server's options for these settings, as `initializationOptions` and as the payload of
 * `workspace/didChangeConfiguration` (both wrapped as `{ infill: ... }`). A setting that reads
 * as undefined is left out: the server then keeps the value it started with.
 */
export function toServerOptions(read: SettingReader, environment: Environment): ServerOptions {
  const options: ServerOptions = {};
  for (const [setting, option] of Object.entries(SERVER_SETTINGS)) {
    let value = read(setting);
    if (value === undefined) {
      continue;
    }
    if (typeof value === "string") {
      value = value.trim();
      if (PATH_SETTINGS.has(setting)) {
        value = value === "" ? null : expandPath(value as string, environment);
      } else if (AUTO_SETTINGS.has(setting) && (value === "" || value === "auto")) {
        value = null;
      }
    }
    options[option] = value;
  }
  return options;
}

/** `~`, `${userHome}`, `${workspaceFolder}` and `${env:NAME}` expanded; nothing else changes
 * (a relative name may be a cached Hugging Face repo id, so it is not made absolute). */
export function expandPath(value: string, environment: Environment): string {
  let out = value;
  if (out === "~" || out.startsWith("~/")) {
    out = environment.home + out.slice(1);
  }
  out = out.replace(/\$\{userHome\}/g, environment.home);
  if (environment.workspaceFolder !== undefined) {
    out = out.replace(/\$\{workspaceFolder\}/g, environment.workspaceFolder);
  }
  out = out.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => environment.env?.[name] ?? "");
  return out;
}

/**
 * Whether a document of this language gets completions: `infill.enable` maps language ids to
 * true/false, `"*"` standing for every language not named (Copilot's convention).
 */
export function isEnabledFor(languageId: string, enable: unknown): boolean {
  if (enable === null || typeof enable !== "object" || Array.isArray(enable)) {
    return typeof enable === "boolean" ? enable : true;
  }
  const map = enable as Record<string, unknown>;
  if (typeof map[languageId] === "boolean") {
    return map[languageId] as boolean;
  }
  return typeof map["*"] === "boolean" ? (map["*"] as boolean) : true;
}

export interface ServerCommand {
  command: string;
  args: string[];
  /** Which setting or search found it, for the log and for error messages. */
  source: string;
}

export interface CommandLookup extends Environment {
  /** The workspace folders' paths, searched for a `.venv` with infill installed. */
  workspaceFolders: readonly string[];
  /** True when path names an executable file. */
  isExecutable: (path: string) => boolean;
  /** The directories of $PATH. */
  pathDirs: readonly string[];
}

export type ServerCommandResult = { ok: true; server: ServerCommand } | { ok: false; problem: string };

const FIX =
  "Install infill where VS Code can find it (`pip install -e <infill checkout>` puts an `infill` " +
  "command on PATH), or set `infill.server.path` to the `infill` executable, or " +
  "`infill.server.pythonPath` to a Python interpreter that has infill installed.";

/**
 * How to start the server, in this order:
 *  1. `infill.server.path`: that `infill` executable, `serve`;
 *  2. `infill.server.pythonPath`: `python -m infill.cli serve`;
 *  3. `infill` on PATH;
 *  4. `.venv/bin/infill` in a workspace folder (a checkout of infill itself, say).
 * `infill.server.args` are appended. A named file that is not there is a problem with a fix,
 * not a crash of the language client.
 */
export function resolveServerCommand(read: SettingReader, lookup: CommandLookup): ServerCommandResult {
  const extra = stringList(read("server.args"));
  const path = stringSetting(read("server.path"), lookup);
  if (path) {
    return lookup.isExecutable(path)
      ? { ok: true, server: { command: path, args: ["serve", ...extra], source: "infill.server.path" } }
      : { ok: false, problem: `infill.server.path is ${path}, which is not an executable file. ${FIX}` };
  }
  const python = stringSetting(read("server.pythonPath"), lookup);
  if (python) {
    const found = python.includes("/") ? (lookup.isExecutable(python) ? python : undefined) : onPath(python, lookup);
    return found
      ? {
          ok: true,
          server: { command: found, args: ["-m", "infill.cli", "serve", ...extra], source: "infill.server.pythonPath" },
        }
      : { ok: false, problem: `infill.server.pythonPath is ${python}, which is not an executable file. ${FIX}` };
  }
  const infill = onPath("infill", lookup);
  if (infill) {
    return { ok: true, server: { command: infill, args: ["serve", ...extra], source: "PATH" } };
  }
  for (const folder of lookup.workspaceFolders) {
    const candidate = `${folder}/.venv/bin/infill`;
    if (lookup.isExecutable(candidate)) {
      return { ok: true, server: { command: candidate, args: ["serve", ...extra], source: "workspace .venv" } };
    }
  }
  return { ok: false, problem: `The infill language server was not found: no \`infill\` on PATH and no .venv/bin/infill in the workspace. ${FIX}` };
}

function onPath(name: string, lookup: CommandLookup): string | undefined {
  for (const dir of lookup.pathDirs) {
    if (dir && lookup.isExecutable(`${dir}/${name}`)) {
      return `${dir}/${name}`;
    }
  }
  return undefined;
}

function stringSetting(value: unknown, environment: Environment): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? expandPath(value.trim(), environment) : undefined;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}
