/**
 * What the status bar item says. Pure (no `vscode` import): the extension feeds it the client's
 * state and the server's `infill/status` answer, the unit tests feed it made-up ones.
 */

/** The part of the server's `infill/status` answer (lsp_server/server.py) the status bar uses. */
export interface ServerStatus {
  state?: string; // "not loaded" | "loading" | "ready" | "failed"
  error?: string | null;
  device?: string | null;
  models?: Record<string, string>;
  engines?: string[];
  options?: { engine?: string };
  requests?: { latencyMs?: { count?: number; median?: number; p90?: number; last?: number } };
}

export type Phase = "starting" | "loading" | "ready" | "error" | "stopped";

export interface StatusInput {
  /** The language client: starting (no answer to `initialize` yet), running, or stopped. */
  client: "starting" | "running" | "stopped";
  /** Set when the server could not be started, or exited and stays down. */
  clientError?: string;
  server?: ServerStatus;
  /** Completions paused with the toggle command. */
  paused: boolean;
  /** The active editor's language has completions switched off in `infill.enable`. */
  languageOff?: string;
  /** Milliseconds of the last completion that came back with items, as the editor saw it. */
  lastLatencyMs?: number;
}

export interface StatusView {
  text: string;
  tooltip: string;
  phase: Phase;
  /** "error" and "warning" colour the item's background. */
  severity?: "error" | "warning";
}

export function phaseOf(input: StatusInput): Phase {
  if (input.clientError || input.server?.state === "failed") {
    return "error";
  }
  if (input.client === "stopped") {
    return "stopped";
  }
  if (input.client === "starting" || input.server === undefined) {
    return "starting";
  }
  return input.server.state === "ready" ? "ready" : "loading";
}

/** The engine setting, and what serves it: "auto" names the engines that loaded. */
export function engineLabel(server: ServerStatus | undefined): string {
  const engine = server?.options?.engine ?? "auto";
  const loaded = server?.engines ?? [];
  if (engine === "auto" && loaded.length > 0) {
    return `auto (${loaded.join("+")})`;
  }
  return engine;
}

export function statusView(input: StatusInput): StatusView {
  const phase = phaseOf(input);
  const server = input.server;
  const lines: string[] = [];
  let text: string;
  let severity: StatusView["severity"];
  switch (phase) {
    case "error":
      text = "$(error) infill";
      severity = "error";
      lines.push(`Error: ${input.clientError ?? server?.error ?? "the server failed"}`);
      break;
    case "stopped":
      text = "$(debug-stop) infill";
      lines.push("The server is stopped. Run “infill: Restart Server” to start it.");
      break;
    case "starting":
      text = "$(sync~spin) infill";
      lines.push("Starting the server…");
      break;
    case "loading":
      text = "$(sync~spin) infill loading";
      lines.push("Loading the models; completions start when they are ready.");
      break;
    case "ready":
      text = `$(sparkle) infill ${engineLabel(server)}`;
      if (input.lastLatencyMs !== undefined) {
        text += ` ${formatMs(input.lastLatencyMs)}`;
      }
      lines.push(`Ready: ${engineLabel(server)} on ${server?.device ?? "?"}`);
      break;
  }
  if (input.paused && phase !== "error") {
    text = "$(circle-slash) infill off";
    severity = "warning";
    lines.unshift("Completions are paused (“infill: Toggle Completions” resumes them).");
  } else if (input.languageOff && phase === "ready") {
    text = `$(circle-slash) infill off for ${input.languageOff}`;
    lines.unshift(`Completions are off for ${input.languageOff} (setting infill.enable).`);
  }
  for (const [engine, model] of Object.entries(server?.models ?? {})) {
    lines.push(`${engine}: ${model}`);
  }
  const latency = server?.requests?.latencyMs;
  if (latency?.count) {
    lines.push(`Server latency over the last ${latency.count}: median ${formatMs(latency.median)}, p90 ${formatMs(latency.p90)}`);
  }
  if (input.lastLatencyMs !== undefined) {
    lines.push(`Last completion, as the editor saw it: ${formatMs(input.lastLatencyMs)}`);
  }
  lines.push("Click for the server's status.");
  return { text, tooltip: lines.join("\n"), phase, severity };
}

export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) {
    return "?";
  }
  return ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}
