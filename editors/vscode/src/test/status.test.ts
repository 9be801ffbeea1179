import assert from "node:assert/strict";
import { test } from "node:test";

import { engineLabel, formatMs, phaseOf, statusView } from "../status";

const ready = {
  state: "ready",
  device: "cpu",
  engines: ["speculative", "diffusion"],
  models: { speculative: "shipped-ar", diffusion: "shipped-diffusion" },
  options: { engine: "auto" },
  requests: { latencyMs: { count: 3, median: 120, p90: 300, last: 90 } },
};

test("phases: starting, loading, ready, error, stopped", () => {
  assert.equal(phaseOf({ client: "starting", paused: false }), "starting");
  assert.equal(phaseOf({ client: "running", paused: false }), "starting"); // no status yet
  assert.equal(phaseOf({ client: "running", paused: false, server: { state: "loading" } }), "loading");
  assert.equal(phaseOf({ client: "running", paused: false, server: { state: "not loaded" } }), "loading");
  assert.equal(phaseOf({ client: "running", paused: false, server: ready }), "ready");
  assert.equal(phaseOf({ client: "running", paused: false, server: { state: "failed", error: "x" } }), "error");
  assert.equal(phaseOf({ client: "stopped", paused: false, clientError: "not found" }), "error");
  assert.equal(phaseOf({ client: "stopped", paused: false }), "stopped");
});

test("ready shows the engine and the last latency", () => {
  const view = statusView({ client: "running", paused: false, server: ready, lastLatencyMs: 234.4 });
  assert.equal(view.text, "$(sparkle) infill auto (speculative+diffusion) 234 ms");
  assert.equal(view.severity, undefined);
  assert.match(view.tooltip, /Ready: auto \(speculative\+diffusion\) on cpu/);
  assert.match(view.tooltip, /speculative: shipped-ar/);
  assert.match(view.tooltip, /median 120 ms, p90 300 ms/);
});

test("loading, error and paused", () => {
  assert.equal(statusView({ client: "running", paused: false, server: { state: "loading" } }).text, "$(sync~spin) infill loading");
  const error = statusView({ client: "running", paused: false, server: { state: "failed", error: "no model could be loaded" } });
  assert.equal(error.text, "$(error) infill");
  assert.equal(error.severity, "error");
  assert.match(error.tooltip, /no model could be loaded/);
  const paused = statusView({ client: "running", paused: true, server: ready });
  assert.equal(paused.text, "$(circle-slash) infill off");
  const off = statusView({ client: "running", paused: false, server: ready, languageOff: "markdown" });
  assert.equal(off.text, "$(circle-slash) infill off for markdown");
});

test("engine label and milliseconds", () => {
  assert.equal(engineLabel({ options: { engine: "diffusion" }, engines: ["diffusion"] }), "diffusion");
  assert.equal(engineLabel(undefined), "auto");
  assert.equal(formatMs(12.6), "13 ms");
  assert.equal(formatMs(1530), "1.5 s");
  assert.equal(formatMs(12_400), "12 s");
  assert.equal(formatMs(undefined), "?");
});
