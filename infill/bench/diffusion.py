"""`infill bench diffusion`: the reference schedule vs the engine with the gap length unknown.

Settings, side by side on the same tasks:
- reference: one token per forward and the true gap length (the oracle LLaDA setting);
- oracle length with confidence thresholds (parallel commits);
- unknown length (the engine's oversized gap whose surplus collapses into pads), one token per
  forward and with thresholds.
Per setting: forwards per completion, tokens per forward, median ms, exact match, and the share
of completions that keep the document parseable.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path


from infill.diffusion.engine import DiffusionSettings, encode, generate
from infill.models.loading import DEFAULT_MODELS, load_diffusion
from infill.request import InfillRequest
from infill.train import corpus
from infill.train.heldout import line_tasks

SETTINGS = {
    "reference (1 token/forward, true length)": (DiffusionSettings(collapse=False), True),
    "true length, threshold 0.9": (DiffusionSettings(threshold=0.9, collapse=False), True),
    "unknown length, 1 token/forward": (DiffusionSettings(), False),
    "unknown length, threshold 0.9": (DiffusionSettings(threshold=0.9), False),
    "unknown length, threshold 0.7": (DiffusionSettings(threshold=0.7), False),
    "unknown length, threshold 0.5": (DiffusionSettings(threshold=0.5), False),
}


def run_setting(dm, tasks, settings: DiffusionSettings, oracle: bool) -> dict:
    from infill import syntax  # tree-sitter: not needed to build the CLI parser
    exact, parses, ms, forwards, tokens = 0, 0, [], [], []
    for t in tasks:
        request = InfillRequest(prefix=t.prefix, suffix=t.suffix, path=t.path, engine="diffusion",
                                max_tokens=64, multiline=False)
        gap = max(1, len(encode(dm, t.expected))) if oracle else None
        start = time.perf_counter()
        text, kept, n = generate(dm, request, False, settings, gap=gap)
        ms.append((time.perf_counter() - start) * 1000)
        forwards.append(n)
        tokens.append(kept)
        exact += text.rstrip() == t.expected.rstrip()
        language = syntax.language_for(None, t.path)
        parses += syntax.check(t.prefix, text, t.suffix, language).valid
    return {"exact_match": exact / len(tasks), "parses": parses / len(tasks),
            "median_ms": statistics.median(ms), "forwards": statistics.fmean(forwards),
            "tokens_per_forward": sum(tokens) / max(1, sum(forwards))}


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    dm = load_diffusion(args.diffusion or DEFAULT_MODELS["diffusion"], args.device)
    files = corpus.collect(packages=corpus.HELD_OUT_PACKAGES)
    tasks = line_tasks(files, args.tasks, seed=1)
    results = {}
    for name, (settings, oracle) in SETTINGS.items():
        results[name] = run_setting(dm, tasks, settings, oracle)
    table = Table(title=f"diffusion engine: {len(tasks)} held-out single-line tasks, {dm.device}")
    for column in ("setting", "exact match", "parses", "forwards", "tokens/forward", "median ms"):
        table.add_column(column)
    for name, r in results.items():
        table.add_row(name, f"{100 * r['exact_match']:.1f}%", f"{100 * r['parses']:.0f}%",
                      f"{r['forwards']:.1f}", f"{r['tokens_per_forward']:.2f}",
                      f"{r['median_ms']:.0f}")
    Console(width=150).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(dm.device), "tasks": len(tasks),
                                               "results": results}, indent=2))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("diffusion", help="reference schedule vs unknown length and thresholds")
    p.add_argument("--device")
    p.add_argument("--diffusion")
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--json")
    p.set_defaults(run=run)
