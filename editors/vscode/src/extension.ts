/**
 * The infill extension: starts `infill serve` over stdio and lets vscode-languageclient 11 do
 * the protocol (document sync, `textDocument/inlineCompletion`, `$/cancelRequest`, and the
 * `infill.accepted` command every item carries, which it runs on the server through
 * `workspace/executeCommand` when a suggestion is accepted). What is left here: settings in,
 * the status bar, four commands, and clear messages when the server cannot start.
 */

import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  State,
} from "vscode-languageclient/node";

import { Environment, SERVER_SETTINGS, isEnabledFor, resolveServerCommand, toServerOptions } from "./settings";
import { ServerStatus, StatusInput, statusView } from "./status";

const SECTION = "infill";
// lsp_server/server.py STATUS. Sent with {} params: pygls answers a request without params
// with an Internal Error.
const STATUS_REQUEST = "infill/status";
const PAUSED_KEY = "infill.paused";
const STDERR_LINES = 40;
const MAX_RESTARTS = 3; // crashes within RESTART_WINDOW_MS before the client gives up
const RESTART_WINDOW_MS = 3 * 60_000;

let extension: InfillExtension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extension = new InfillExtension(context);
  await extension.start();
}

export async function deactivate(): Promise<void> {
  await extension?.stop();
  extension = undefined;
}

class InfillExtension {
  private client: LanguageClient | undefined;
  private readonly log: vscode.LogOutputChannel;
  private readonly item: vscode.StatusBarItem;
  private clientState: StatusInput["client"] = "stopped";
  private clientError: string | undefined;
  private serverStatus: ServerStatus | undefined;
  private lastLatencyMs: number | undefined;
  private stderrTail: string[] = [];
  private crashes: number[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private pollSoon = true; // poll every second until the models are ready or failed
  private reported = false; // this start's failure has been shown to the user

  constructor(private readonly context: vscode.ExtensionContext) {
    this.log = vscode.window.createOutputChannel("infill", { log: true });
    this.item = vscode.window.createStatusBarItem("infill.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "infill";
    this.item.command = "infill.showStatus";
    this.item.show();
    context.subscriptions.push(
      this.log,
      this.item,
      vscode.commands.registerCommand("infill.toggle", () => this.toggle()),
      vscode.commands.registerCommand("infill.restartServer", () => this.restart()),
      vscode.commands.registerCommand("infill.showLog", () => this.log.show(true)),
      vscode.commands.registerCommand("infill.showStatus", () => this.showStatus()),
      vscode.workspace.onDidChangeConfiguration((e) => this.onSettingsChanged(e)),
      vscode.window.onDidChangeActiveTextEditor(() => this.render()),
    );
    this.render();
  }

  // --- settings ---------------------------------------------------------------------------

  private settings(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  private environment(): Environment {
    return { home: os.homedir(), workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath, env: process.env };
  }

  /** The server's options, wrapped the way lsp_server/options.py reads them. */
  private serverOptions(): { infill: Record<string, unknown> } {
    const settings = this.settings();
    return { infill: toServerOptions((key) => settings.get(key), this.environment()) };
  }

  private async onSettingsChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration(SECTION)) {
      return;
    }
    if (e.affectsConfiguration(`${SECTION}.server`)) {
      this.log.info("infill.server.* changed: restarting the server");
      await this.restart();
      return;
    }
    const serverSide = Object.keys(SERVER_SETTINGS).some((s) => e.affectsConfiguration(`${SECTION}.${s}`));
    if (serverSide && this.client?.isRunning()) {
      // Pushed, not pulled: the server takes a settings object as it is, no restart (a model
      // option reloads the models in the background).
      const options = this.serverOptions();
      await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: options });
      this.log.info(`settings sent to the server: ${JSON.stringify(options.infill)}`);
      this.pollSoon = true;
      this.schedulePoll(300);
    }
    this.render();
  }

  // --- the language client ------------------------------------------------------------------

  async start(): Promise<void> {
    this.reported = false;
    this.clientError = undefined;
    const settings = this.settings();
    const resolved = resolveServerCommand((key) => settings.get(key), {
      ...this.environment(),
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
      isExecutable,
      pathDirs: (process.env.PATH ?? "").split(path.delimiter),
    });
    if (!resolved.ok) {
      this.fail(resolved.problem);
      return;
    }
    const { command, args, source } = resolved.server;
    // The server's working directory, also for the check below (`python -m` imports from it).
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? os.homedir();
    if (source === "infill.server.pythonPath" && !(await hasInfillPackage(command, cwd))) {
      this.fail(
        `${command} has no infill package (No module named 'infill'). Install it there ` +
          "(`pip install -e <infill checkout>`), or set infill.server.pythonPath to the Python " +
          "that has it (the checkout's .venv/bin/python).",
      );
      return;
    }
    this.log.info(`starting the server (${source}): ${command} ${args.join(" ")}`);
    this.serverStatus = undefined;
    this.stderrTail = [];
    this.clientState = "starting";
    this.render();

    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: () => this.serverOptions(),
      initializationFailedHandler: (error) => {
        this.fail(`the server failed to initialize: ${error}`);
        return false;
      },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => this.onServerClosed(),
      },
      stdioOptions: {
        stdout: () => undefined, // stdout carries the protocol
        stderr: (input, channel) => {
          let buffered = "";
          input.on("data", (chunk: Buffer | string) => {
            const lines = (buffered + chunk.toString()).split(/\r?\n/);
            buffered = lines.pop() ?? "";
            for (const line of lines) {
              channel.info(`[server] ${line}`);
              this.stderrTail.push(line);
            }
            this.stderrTail.splice(0, Math.max(0, this.stderrTail.length - STDERR_LINES));
          });
        },
      },
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (this.paused() || !isEnabledFor(document.languageId, this.settings().get("enable"))) {
            return null;
          }
          const started = Date.now();
          const result = await next(document, position, context, token);
          const items = Array.isArray(result) ? result : (result?.items ?? []);
          const ms = Date.now() - started;
          this.log.debug(
            `inline completion at ${position.line + 1}:${position.character + 1} ` +
              `(${context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? "invoked" : "automatic"}): ${items.length} item(s) in ${ms} ms` +
              (token.isCancellationRequested ? ", cancelled" : `: ${JSON.stringify(items.map((i) => i.insertText))}`),
          );
          if (items.length > 0 && !token.isCancellationRequested) {
            this.lastLatencyMs = ms;
            this.render();
          }
          return result;
        },
        workspace: {
          // A server that pulls its settings gets the same mapped options as a push.
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (!Array.isArray(answers)) {
              return answers;
            }
            return params.items.map((item, i) => (item.section === SECTION ? this.serverOptions().infill : answers[i]));
          },
        },
      },
    };
    const client = new LanguageClient(
      SECTION,
      "infill",
      { command, args, options: { cwd, env: { ...process.env, PYTHONUNBUFFERED: "1" } } },
      clientOptions,
    );
    this.client = client;
    client.onDidChangeState((e) => {
      this.clientState = e.newState === State.Running ? "running" : e.newState === State.Starting ? "starting" : "stopped";
      if (e.newState === State.Running) {
        this.pollSoon = true;
        this.schedulePoll(0);
      }
      this.render();
    });
    try {
      await client.start();
    } catch (error) {
      if (this.client === client) {
        this.fail(`the server did not start (${command} ${args.join(" ")}): ${this.lastServerError() ?? error}`);
      }
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.pollTimer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.log.warn(`stopping the server: ${error}`);
      }
      await client.dispose().catch(() => undefined);
    }
    this.clientState = "stopped";
    this.render();
  }

  private async restart(): Promise<void> {
    this.crashes = [];
    await this.stop();
    await this.start();
  }

  /** The server exited. Restart it unless it keeps crashing; then say why, with the fix. */
  private onServerClosed() {
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < RESTART_WINDOW_MS), now];
    if (this.serverStatus !== undefined && this.crashes.length <= MAX_RESTARTS) {
      this.log.warn(`the server exited; restarting it (${this.crashes.length} of ${MAX_RESTARTS})`);
      return { action: CloseAction.Restart, handled: true };
    }
    this.fail(`the server exited: ${this.lastServerError() ?? "no message"}`);
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  /** The last line the server wrote to stderr that looks like an error (a traceback's last). */
  private lastServerError(): string | undefined {
    const lines = this.stderrTail.map((l) => l.trim()).filter((l) => l.length > 0);
    return [...lines].reverse().find((l) => /error|exception|not found|no module/i.test(l)) ?? lines[lines.length - 1];
  }

  /** Says what went wrong, once per start: a failing start trips several handlers. */
  private fail(problem: string): void {
    this.log.error(problem);
    this.clientError ??= problem; // the first reason is the one that says why
    this.render();
    if (this.reported) {
      return;
    }
    this.reported = true;
    const fix =
      /No module named/i.test(problem) && !problem.includes("infill.server.pythonPath")
        ? " Set infill.server.pythonPath to the Python where infill is installed (its .venv/bin/python)."
        : "";
    void vscode.window.showErrorMessage(`infill: ${problem}${fix}`, "Open Settings", "Show Log").then((choice) => {
      if (choice === "Open Settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", "infill.server");
      } else if (choice === "Show Log") {
        this.log.show(true);
      }
    });
  }

  // --- status -------------------------------------------------------------------------------

  private schedulePoll(delayMs: number): void {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => void this.poll(), delayMs);
  }

  private async poll(): Promise<void> {
    const client = this.client;
    if (!client?.isRunning()) {
      return;
    }
    try {
      this.serverStatus = await client.sendRequest<ServerStatus>(STATUS_REQUEST, {});
      const state = this.serverStatus?.state;
      this.pollSoon = state !== "ready" && state !== "failed";
    } catch (error) {
      this.log.warn(`${STATUS_REQUEST}: ${error}`);
    }
    this.render();
    if (this.client === client) {
      this.schedulePoll(this.pollSoon ? 1000 : 15_000);
    }
  }

  private paused(): boolean {
    return this.context.globalState.get<boolean>(PAUSED_KEY, false);
  }

  private render(): void {
    const language = vscode.window.activeTextEditor?.document.languageId;
    const view = statusView({
      client: this.clientState,
      clientError: this.clientError,
      server: this.serverStatus,
      paused: this.paused(),
      languageOff: language && !isEnabledFor(language, this.settings().get("enable")) ? language : undefined,
      lastLatencyMs: this.lastLatencyMs,
    });
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.severity ? new vscode.ThemeColor(`statusBarItem.${view.severity}Background`) : undefined;
  }

  // --- commands -----------------------------------------------------------------------------

  private async toggle(): Promise<void> {
    const paused = !this.paused();
    await this.context.globalState.update(PAUSED_KEY, paused);
    this.log.info(paused ? "completions paused" : "completions resumed");
    this.render();
    void vscode.window.setStatusBarMessage(paused ? "infill: completions paused" : "infill: completions on", 3000);
  }

  private async showStatus(): Promise<void> {
    if (this.client?.isRunning()) {
      try {
        this.serverStatus = await this.client.sendRequest<ServerStatus>(STATUS_REQUEST, {});
      } catch (error) {
        this.log.warn(`${STATUS_REQUEST}: ${error}`);
      }
    }
    this.render();
    this.log.info(`status: ${JSON.stringify(this.serverStatus ?? null, null, 2)}`);
    const view = statusView({
      client: this.clientState,
      clientError: this.clientError,
      server: this.serverStatus,
      paused: this.paused(),
      lastLatencyMs: this.lastLatencyMs,
    });
    const detail = view.tooltip.split("\n").slice(0, -1).join("\n");
    const choice = await vscode.window.showInformationMessage(`infill: ${view.phase}`, { modal: true, detail }, "Show Log", "Restart Server");
    if (choice === "Show Log") {
      this.log.show(true);
    } else if (choice === "Restart Server") {
      await this.restart();
    }
  }
}

/** Whether python can import infill: checked before starting it, because a server that dies
 * during `initialize` buries the one useful line under the language client's own errors. */
function hasInfillPackage(python: string, cwd: string): Promise<boolean> {
  const probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('infill') else 3)";
  return new Promise((resolve) => {
    execFile(python, ["-c", probe], { cwd, timeout: 20_000 }, (error) => {
      // Only a clean "not found" answer blocks the start; anything odder is left to the server.
      resolve((error as { code?: unknown } | null)?.code !== 3);
    });
  });
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
