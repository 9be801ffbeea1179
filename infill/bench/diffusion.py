"""`infill bench diffusion`: the reference schedule vs the engine with the gap length unknown.

Settings, side by side on the same tasks:
- reference: one token per forward and the true gap length (the oracle LLaDA setting);
- oracle length with parallel commits (a confidence threshold; k tokens per forward, with the
  first forward committing no two neighbours or not: `spaced_first`);
- unknown length (the engine's oversized gap; the first forward decides where the content
  ends, `sampler.end_content`), one token per forward, a threshold, and k per forward (spaced
  or not);
- an AR length prior (`engine.ar_gap`: exactly as many masks as the AR target's greedy
  completion has tokens), one token per forward and 16 per forward (first forward spaced), and
  the engine's default (that length, `engine.default_settings`'s schedule for the task's
  shape); its median ms includes the AR completion (speculative, with the n-gram drafter, as
  the engine runs it), also given alone (`median_ar_ms`).
Tasks: held-out single lines (`infill.train.heldout.line_tasks`) and, with `--safim DIR`, the
first rows of each Python subset of SAFIM (block, control, API), which are scored as SAFIM
scores them (its truncation, then exact match, unit tests in the sandbox, or an API syntax
match: `infill.evaluate.execute`). Per setting and task set: forwards per completion, tokens
per forward, median ms, exact match, edit similarity, pass@1 where tests exist, and the share
of completions that keep the document parseable.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from infill.diffusion.engine import DiffusionSettings, ar_gap, default_settings, encode, generate
from infill.models.loading import DEFAULT_MODELS, load_ar, load_diffusion
from infill.request import InfillRequest
from speculative.drafters import NgramDrafter

# Fast-dLLM's confidence thresholds barely commit more than the forced token per forward with
# the shipped model, which is seldom that sure (BENCHMARKS.md, 2026-11-29): the k-per-forward
# rows commit the k most confident predictions per forward instead, whatever their confidence.
# (settings, gap length): "true" (the expected text's tokens), "unknown" (the engine's fixed
# oversized gap) or "ar" (the AR target's completion as a length prior, `engine.ar_gap`).
SETTINGS = {
    "reference (1 token/forward, true length)": (DiffusionSettings(collapse=False), "true"),
    "true length, threshold 0.9": (DiffusionSettings(threshold=0.9, collapse=False), "true"),
    "true length, 4 tokens/forward": (DiffusionSettings(per_forward=4, collapse=False), "true"),
    # without syntax-guided remasking, whose extra forwards cap tokens per forward
    "true length, 6 tokens/forward, no remasking":
        (DiffusionSettings(per_forward=6, collapse=False, remask_rounds=0), "true"),
    "true length, 8 tokens/forward, no remasking":
        (DiffusionSettings(per_forward=8, collapse=False, remask_rounds=0), "true"),
    "true length, 16 tokens/forward, first forward spaced, no remasking":
        (DiffusionSettings(per_forward=16, spaced_first=True, collapse=False, remask_rounds=0),
         "true"),
    "unknown length, 1 token/forward": (DiffusionSettings(per_forward=1), "unknown"),
    "unknown length, threshold 0.9": (DiffusionSettings(threshold=0.9, per_forward=1), "unknown"),
    "unknown length, 2 tokens/forward": (DiffusionSettings(per_forward=2), "unknown"),
    "unknown length, 4 tokens/forward": (DiffusionSettings(per_forward=4), "unknown"),
    "unknown length, 8 tokens/forward": (DiffusionSettings(per_forward=8), "unknown"),
    "unknown length, 16 tokens/forward, first forward spaced":
        (DiffusionSettings(per_forward=16, spaced_first=True), "unknown"),
    "unknown length, 8 tokens/forward, first forward spaced":
        (DiffusionSettings(per_forward=8, spaced_first=True), "unknown"),
    # the engine's default: the AR length, with `engine.default_settings`'s schedule per shape
    "the engine's default (AR length; a line 16 tokens/forward, first forward spaced)":
        (None, "ar"),
    # the AR length prior denoises exactly that many masks: no pad, no collapse (`ar_gap`)
    "AR length, 1 token/forward": (DiffusionSettings(collapse=False), "ar"),
    "AR length, 16 tokens/forward, first forward spaced":
        (DiffusionSettings(per_forward=16, spaced_first=True, collapse=False), "ar"),
    "AR length, 16 tokens/forward, first forward spaced, no remasking":
        (DiffusionSettings(per_forward=16, spaced_first=True, collapse=False, remask_rounds=0),
         "ar"),
}


@dataclass
class Case:
    prefix: str
    suffix: str
    expected: str
    multiline: bool
    path: str | None = None
    task: object = None  # a SAFIM `infill.batch.Task`: scored by SAFIM's rules


def heldout_cases(count: int) -> list[Case]:
    from infill.train import corpus
    from infill.train.heldout import line_tasks

    files = corpus.collect(packages=corpus.HELD_OUT_PACKAGES)
    return [Case(t.prefix, t.suffix, t.expected, False, t.path)
            for t in line_tasks(files, count, seed=1)]


def safim_cases(folder: Path, per_kind: int) -> dict[str, list[Case]]:
    from infill.batch import read_tasks
    from infill.safim import KINDS

    out: dict[str, list[Case]] = {f"SAFIM {kind}": [] for kind in KINDS}
    for task in read_tasks(folder).tasks:
        info = task.problem["safim"]
        cases = out[f"SAFIM {info['kind']}"]
        if len(cases) < per_kind:
            cases.append(Case(task.prefix, task.suffix, info["ground_truth"],
                              bool(task.multiline), "safim.py", task))
    return {name: cases for name, cases in out.items() if cases}


def run_setting(dm, cases: list[Case], settings: DiffusionSettings | None, length: str,
                ar=None) -> dict:
    """One setting over the cases; `length` as in SETTINGS ("ar" needs the AR model `ar`,
    whose decoding, with the engine's default drafter, counts in the ms); settings None: the
    engine's for the case's shape."""
    from rapidfuzz.distance import Levenshtein

    from infill import safim, sandbox, syntax  # tree-sitter: not needed to build the CLI parser
    from infill.evaluate import execute

    exact, parses, similarity, passed, tested = 0, 0, [], 0, 0
    ms, ar_ms, forwards, tokens = [], [], [], []
    # `Engines.drafter` by default: greedy output is the AR model's
    drafter = NgramDrafter(next_tokens=ar.next_tokens if ar is not None else None)
    for case in cases:
        shaped = settings or default_settings(length, case.multiline)
        request = InfillRequest(prefix=case.prefix, suffix=case.suffix, path=case.path,
                                engine="diffusion", max_tokens=64, multiline=case.multiline)
        start = time.perf_counter()
        gap = None
        if length == "true":
            gap = max(1, len(encode(dm, case.expected)))
        elif length == "ar":
            gap = ar_gap(ar, dm, request, case.multiline, shaped, drafter)
            ar_ms.append((time.perf_counter() - start) * 1000)
        text, kept, n = generate(dm, request, case.multiline, shaped, gap=gap)
        ms.append((time.perf_counter() - start) * 1000)
        forwards.append(n)
        tokens.append(kept)
        if case.task is not None:
            kind = case.task.problem["safim"]["kind"]
            text = safim.truncate(kind, text, case.prefix, case.suffix)
            ok, _ = execute(case.task, text, sandbox.Limits(seconds=5.0))
            if ok is not None:
                tested += 1
                passed += ok
        exact += text.strip() == case.expected.strip()
        similarity.append(Levenshtein.normalized_similarity(text.strip(), case.expected.strip()))
        language = syntax.language_for(None, case.path)
        parses += syntax.check(case.prefix, text, case.suffix, language).valid
    return {"tasks": len(cases), "exact_match": exact / len(cases), "parses": parses / len(cases),
            "edit_similarity": statistics.fmean(similarity),
            "pass_at_1": passed / tested if tested else None,
            "median_ms": statistics.median(ms),
            "median_ar_ms": statistics.median(ar_ms) if ar_ms else None,
            "forwards": statistics.fmean(forwards),
            "tokens_per_forward": sum(tokens) / max(1, sum(forwards)),
            "tokens": statistics.fmean(tokens)}


def chosen_settings(words: list[str] | None) -> dict:
    """The settings whose name contains one of the words (all of them without words), always
    with the reference first, which every other row is compared to."""
    reference = next(iter(SETTINGS))
    return {name: value for name, value in SETTINGS.items()
            if name == reference or not words or any(w in name for w in words)}


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    dm = load_diffusion(args.diffusion or DEFAULT_MODELS["diffusion"], args.device)
    task_sets = {"held-out lines": heldout_cases(args.tasks)}
    if args.safim:
        task_sets.update(safim_cases(Path(args.safim), args.safim_rows))
    chosen = chosen_settings(args.settings)
    ar = None
    if any(length == "ar" for _, length in chosen.values()):
        ar = load_ar(args.target or DEFAULT_MODELS["target"], args.device)
    results: dict[str, dict[str, dict]] = {}
    for set_name, cases in task_sets.items():
        for name, (settings, length) in chosen.items():
            results.setdefault(set_name, {})[name] = run_setting(dm, cases, settings, length, ar)
            print(f"{set_name}, {name}: done", flush=True)
            if args.json:  # after every setting: a run cut short keeps what it measured
                Path(args.json).write_text(json.dumps(
                    {"device": str(dm.device), "model": dm.name, "results": results}, indent=2))
    console = Console(width=170)
    for set_name, by_setting in results.items():
        table = Table(title=f"diffusion engine: {set_name}, {len(task_sets[set_name])} tasks, "
                            f"{dm.device}")
        for column in ("setting", "exact match", "edit sim.", "pass@1", "parses", "forwards",
                       "tokens", "tokens/forward", "median ms"):
            table.add_column(column)
        for name, r in by_setting.items():
            pass1 = "-" if r["pass_at_1"] is None else f"{100 * r['pass_at_1']:.1f}%"
            table.add_row(name, f"{100 * r['exact_match']:.1f}%", f"{r['edit_similarity']:.3f}",
                          pass1, f"{100 * r['parses']:.0f}%", f"{r['forwards']:.1f}",
                          f"{r['tokens']:.1f}", f"{r['tokens_per_forward']:.2f}",
                          f"{r['median_ms']:.0f}")
        console.print(table)
    if args.safim:
        from infill.safim import ATTRIBUTION

        console.print(f"Data: {ATTRIBUTION}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("diffusion", help="reference schedule vs unknown length and thresholds")
    p.add_argument("--device")
    p.add_argument("--diffusion")
    p.add_argument("--target", help="the AR model of the AR-length-prior rows (default: shipped)")
    p.add_argument("--tasks", type=int, default=200, help="held-out single-line tasks")
    p.add_argument("--safim", help="a SAFIM folder or file: its Python rows too")
    p.add_argument("--safim-rows", type=int, default=30, help="rows of each SAFIM kind")
    p.add_argument("--settings", nargs="+", metavar="WORDS",
                   help="only the settings whose name contains one of these (and the reference), "
                        "e.g. --settings 'no remasking'")
    p.add_argument("--json")
    p.set_defaults(run=run)
