"""`infill train heldout`: exact match on held-out single-line infill tasks (MODELS.md).

A task is a random non-blank line of a held-out file: the prefix is everything before the line,
the suffix everything after it (starting with the line's newline), and the line itself, with its
indentation, is the gap. A completion, as the engine returns it, is an exact match when it equals
the line up to trailing whitespace.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from infill.train import corpus


@dataclass(frozen=True)
class LineTask:
    package: str
    path: str
    line_no: int  # 1-based
    prefix: str
    suffix: str
    expected: str


def line_tasks(files: list[corpus.SourceFile], count: int, seed: int = 0) -> list[LineTask]:
    """count tasks, files drawn in proportion to their number of code lines."""
    rng = random.Random(seed)
    candidates = []
    for f in files:
        lines = f.text.split("\n")
        candidates += [(f, i) for i, line in enumerate(lines) if line.strip() and i > 0]
    tasks = []
    for f, i in rng.sample(candidates, min(count, len(candidates))):
        lines = f.text.split("\n")
        prefix = "\n".join(lines[:i]) + "\n"
        suffix = "\n" + "\n".join(lines[i + 1:])
        tasks.append(LineTask(f.package, f.path, i + 1, prefix, suffix, lines[i]))
    return tasks


def heldout_files(data_dir: Path | None, packages: list[str] | None = None
                  ) -> list[corpus.SourceFile]:
    """The held-out files (of these held-out packages only, if given)."""
    if data_dir is not None:
        files = corpus.read_jsonl(data_dir / "heldout.jsonl")
    else:
        files = corpus.collect(packages=corpus.HELD_OUT_PACKAGES)
    wanted = {p.lower() for p in packages or corpus.HELD_OUT_PACKAGES}
    return [f for f in files if f.package.lower() in wanted]


def evaluate(engines, tasks: list[LineTask], engine: str) -> dict:
    return summarize(engine, tasks, score(engines, tasks, engine))


def score(engines, tasks: list[LineTask], engine: str) -> list[dict]:
    """Per task: whether the completion matched, its edit similarity, ms, forwards, tokens."""
    import sys

    from rapidfuzz.distance import Levenshtein

    from infill.request import InfillRequest

    rows, exact = [], 0
    for done, task in enumerate(tasks, 1):
        request = InfillRequest(prefix=task.prefix, suffix=task.suffix, path=task.path,
                                engine=engine, max_tokens=48)
        c = engines.complete(request)[0]
        matched = c.text.rstrip() == task.expected.rstrip()
        exact += matched
        rows.append({"matched": matched, "ms": c.ms, "forwards": c.forwards, "tokens": c.tokens,
                     "similarity": Levenshtein.normalized_similarity(c.text.rstrip(),
                                                                    task.expected.rstrip())})
        if done % 50 == 0:
            print(f"{engine}: {done}/{len(tasks)} tasks, exact match so far {exact / done:.1%}",
                  file=sys.stderr, flush=True)
    return rows


def summarize(engine: str, tasks: list[LineTask], rows: list[dict]) -> dict:
    by_package: dict[str, list[int]] = {}  # package: [tasks, exact matches]
    for task, row in zip(tasks, rows):
        counts = by_package.setdefault(task.package, [0, 0])
        counts[0] += 1
        counts[1] += row["matched"]

    def mean(key):
        return statistics.fmean(r[key] for r in rows) if rows else 0.0

    return {"engine": engine, "tasks": len(tasks),
            "exact_match": sum(r["matched"] for r in rows) / max(1, len(tasks)),
            "edit_similarity": mean("similarity"),
            "median_ms": statistics.median(r["ms"] for r in rows) if rows else 0.0,
            "mean_forwards": mean("forwards"), "mean_tokens": mean("tokens"),
            "by_package": {p: {"tasks": n, "exact_match": hits / n}
                           for p, (n, hits) in sorted(by_package.items())}}


def evaluate_in_processes(config, tasks: list[LineTask], engine: str, workers: int) -> dict:
    """`evaluate` with the tasks dealt out to `workers` processes (every workers-th task each),
    each with its own models and one CPU thread; the same figures as one process gives, but
    for rounding in the model's arithmetic."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shards = [tasks[i::workers] for i in range(workers)]
    context = multiprocessing.get_context("spawn")  # no forked copy of a loaded torch
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(config,)) as pool:
        scored = list(pool.map(_score_in_worker, shards, [engine] * workers))
    rows: list[dict] = [{}] * len(tasks)
    for i, shard_rows in enumerate(scored):
        rows[i::workers] = shard_rows
    return summarize(engine, tasks, rows)


_worker_engines = None


def _start_worker(config) -> None:
    global _worker_engines
    import torch

    from infill.engines import Engines

    torch.set_num_threads(1)
    _worker_engines = Engines(config)


def _score_in_worker(tasks: list[LineTask], engine: str) -> list[dict]:
    return score(_worker_engines, tasks, engine)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from infill.engines import Engines, ModelConfig

    files = heldout_files(args.data, args.packages)
    if not files:
        raise SystemExit(f"no held-out files of {', '.join(args.packages)}; the held-out "
                         f"packages are {', '.join(corpus.HELD_OUT_PACKAGES)}")
    tasks = line_tasks(files, args.tasks)
    folder = args.models
    config = ModelConfig(device=args.device,
                         target=str(folder / "target") if folder else None,
                         diffusion=str(folder / "diffusion") if folder else None,
                         diffusion_length=args.diffusion_length)
    chosen = ("speculative", "diffusion") if args.engine == "both" else (args.engine,)
    if args.workers > 1:
        results = [evaluate_in_processes(config, tasks, e, args.workers) for e in chosen]
    else:
        engines = Engines(config)
        results = [evaluate(engines, tasks, e) for e in chosen]
    table = Table(title=f"held-out single-line infill: {len(tasks)} tasks from {len(files)} files "
                        f"of {', '.join(sorted({f.package for f in files}))}")
    for column in ("engine", "exact match", "edit similarity", "median ms", "forwards", "tokens"):
        table.add_column(column)
    for r in results:
        table.add_row(r["engine"], f"{100 * r['exact_match']:.1f}%", f"{r['edit_similarity']:.3f}",
                      f"{r['median_ms']:.0f}", f"{r['mean_forwards']:.1f}", f"{r['mean_tokens']:.1f}")
    Console(width=140).print(table)
    if args.json:
        args.json.write_text(json.dumps({"files": len(files), "results": results}, indent=2))
    return 0
