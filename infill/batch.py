"""`infill batch`: fill every gap of a JSONL benchmark or task file, headless, without losing work.

    infill batch IN.jsonl -o OUT.jsonl [--engine auto|speculative|diffusion] [--samples N]
    infill batch ../shared/data/safim -o safim.jsonl --limit 100      # SAFIM, Python rows
    torchrun --nproc_per_node 8 -m infill.cli batch IN.jsonl -o OUT.jsonl   # one shard per GPU

Input rows are the human-eval-infilling format: `task_id`, `prompt` (the prefix), `suffix`,
optional `language` (LSP languageId), `path` and `multiline`; other fields (tests, reference) are
for `infill eval`. SAFIM files or its folder are converted (`infill.safim`). Output rows:
`task_id`, `sample`, `completion`, `engine`, `model`, `tokens`, `forwards`, `ms` (the row's
share of its batch's time), `valid` (the syntax guard's verdict), `truncated`, `batch`. SAFIM
rows then get SAFIM's own truncation; where it changed the text, `guarded` keeps the text before.

Nothing is lost: each row is appended and flushed as soon as its batch is done; a restarted run
(same command) skips the (task_id, sample) pairs already written, and a line cut short by a kill
is dropped before appending. A bad input row is reported with its line number and skipped. At
the end the file is rewritten once, atomically, in input order, so a run's output does not
depend on batching or on the number of processes.

Under torchrun each rank takes every WORLD_SIZE-th pending row, writes `OUT.rank<R>` and rank 0
merges the rank files into OUT (gloo coordinates; the models run on cuda:LOCAL_RANK).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from infill import safim

FORMATS = ("auto", "humaneval", "safim")


@dataclass
class Task:
    task_id: str
    prefix: str
    suffix: str
    language: str | None = None
    path: str | None = None
    multiline: bool | None = None
    where: str = ""  # "file:line", for messages
    problem: dict = field(default_factory=dict)  # the whole input row (tests, reference, ...)


@dataclass
class TaskFile:
    tasks: list[Task]
    bad: list[str]  # "file:line: reason"
    other_language: int = 0  # SAFIM rows of other languages, left out
    format: str = "humaneval"


class InputError(ValueError):
    """The input cannot be read at all (missing file, not JSONL): one line for the user."""


def read_tasks(path: Path, fmt: str = "auto", language: str | None = "python") -> TaskFile:
    """Every task of a batch input, with the bad rows named (shared by batch and eval).

    `language` is given to rows that carry none (human-eval-infilling rows are Python)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if fmt == "auto":
        fmt = "safim" if safim.is_safim(path) else "humaneval"
    if fmt == "safim":
        result = TaskFile([], [], 0, "safim")
        seen = {}
        for name, number, row in safim.rows(path):
            if row is None:
                result.other_language += 1
            elif isinstance(row, str):
                result.bad.append(f"{name}:{number}: {row}")
            else:
                _add(result, seen, row, f"{name}:{number}", language)
        return result
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a JSONL file (or a SAFIM folder)")
    result, seen = TaskFile([], [], 0, "humaneval"), {}
    try:
        with safim.open_text(path) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                where = f"{path.name}:{number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    result.bad.append(f"{where}: not JSON ({exc.msg})")
                    continue
                _add(result, seen, row, where, language)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    return result


def _add(result: TaskFile, seen: dict, row, where: str, language: str | None) -> None:
    try:
        task = task_of(row, where, language)
    except ValueError as exc:
        result.bad.append(f"{where}: {exc}")
        return
    if task.task_id in seen:
        result.bad.append(f"{where}: duplicate task_id {task.task_id!r} (first at {seen[task.task_id]})")
        return
    seen[task.task_id] = where
    result.tasks.append(task)


def task_of(row, where: str, language: str | None) -> Task:
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    task_id = row.get("task_id")
    if isinstance(task_id, bool) or not isinstance(task_id, (str, int)) or str(task_id) == "":
        raise ValueError("missing or invalid 'task_id' (a string or an integer)")
    prompt, suffix = row.get("prompt"), row.get("suffix", "")
    if not isinstance(prompt, str):
        raise ValueError("missing or non-string 'prompt'")
    if suffix is None:
        suffix = ""
    if not isinstance(suffix, str):
        raise ValueError("'suffix' must be a string")
    lang, file_path, multiline = row.get("language"), row.get("path"), row.get("multiline")
    if lang is not None and not isinstance(lang, str):
        raise ValueError("'language' must be a string")
    if file_path is not None and not isinstance(file_path, str):
        raise ValueError("'path' must be a string")
    if multiline is not None and not isinstance(multiline, bool):
        raise ValueError("'multiline' must be true, false or null")
    if lang is None and file_path is None:
        lang = language
    return Task(str(task_id), prompt, suffix, lang, file_path, multiline, where, row)


# -- output files -------------------------------------------------------------------------------


def row_key(row: dict) -> tuple[str, int] | None:
    try:
        return str(row["task_id"]), int(row.get("sample", 0))
    except (KeyError, TypeError, ValueError):
        return None


def read_rows(path: Path) -> tuple[list[dict], int]:
    """The complete rows of an output file, and how many lines were not (a line cut short by a
    kill, a hand edit)."""
    rows, broken = [], 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    broken += 1
                    continue
                if isinstance(row, dict) and row_key(row) is not None:
                    rows.append(row)
                else:
                    broken += 1
    except FileNotFoundError:
        pass
    return rows, broken


def drop_partial_line(path: Path) -> bool:
    """Cut a last line that has no newline (a write interrupted by a kill), so the next append
    starts on a line of its own. True if something was cut."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return False
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return False
            block = min(size, 1 << 16)
            while True:
                f.seek(size - block)
                chunk = f.read(block)
                cut = chunk.rfind(b"\n")
                if cut >= 0 or block == size:
                    f.truncate(size - block + cut + 1 if cut >= 0 else 0)
                    return True
                block = min(size, block * 2)
    except FileNotFoundError:
        return False


class RowWriter:
    """Appends one JSON row per line, flushed at once; fsync'd per batch (`sync`)."""

    def __init__(self, path: Path):
        drop_partial_line(path)
        self.file = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.file.flush()

    def sync(self) -> None:
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.sync()
        self.file.close()


def part_files(out: Path) -> list[Path]:
    return sorted(out.parent.glob(out.name + ".rank*"))


def merge(out: Path, order: list[tuple[str, int]]) -> int:
    """OUT and any rank files -> OUT, one row per (task_id, sample), in input order (rows of
    tasks not in the input last); atomic (a crash leaves the old OUT and the rank files)."""
    rows, seen = [], set()
    for source in [out] + part_files(out):
        for row in read_rows(source)[0]:
            key = row_key(row)
            if key not in seen:
                seen.add(key)
                rows.append(row)
    rank = {key: i for i, key in enumerate(order)}
    rows.sort(key=lambda r: rank.get(row_key(r), len(rank)))
    tmp = out.with_name(out.name + ".merging")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    for part in part_files(out):
        part.unlink()
    return len(rows)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Shard:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Shard":
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                   int(env.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def start(self) -> None:
        if self.distributed:
            from datetime import timedelta

            import torch.distributed as dist

            # gloo only coordinates (barriers, a few small objects); ranks may finish hours
            # apart on a long run, hence the long timeout
            dist.init_process_group("gloo", timeout=timedelta(hours=24))

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, value) -> list:
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def stop(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


@dataclass
class Stats:
    written: int = 0
    failed: int = 0
    valid: int = 0
    tokens: int = 0
    forwards: int = 0
    seconds: float = 0.0
    engines: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)

    def add(self, other: "Stats") -> None:
        for name in ("written", "failed", "valid", "tokens", "forwards"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds = max(self.seconds, other.seconds)
        self.engines.update(other.engines)
        self.errors += other.errors


def add_arguments(parser) -> None:
    """`infill batch`'s own options (the request and model options come from the CLI)."""
    parser.add_argument("input", type=Path, help="JSONL tasks (.jsonl or .jsonl.gz), or a SAFIM file or folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSONL rows, appended")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="input rows: humaneval (task_id, prompt, suffix), safim, or auto: "
                             "safim for SAFIM's file names and folder")
    parser.add_argument("--samples", type=int, default=1, help="completions per task (seeds seed..seed+N-1)")
    parser.add_argument("--limit", type=int, help="only the first N tasks")
    parser.add_argument("--no-guard", action="store_true",
                        help="return the engines' raw text (valid still says whether it adds a "
                             "syntax error): the baseline the syntax guard is measured against")
    parser.add_argument("--language", default="python",
                        help="languageId of rows that name neither language nor path (default python)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per batch (default 32 on a GPU, 8 on the CPU)")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="padded tokens per batch (default 32768 on a GPU, 8192 on the CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _usage(message: str):
    from infill.cli import UsageError

    return UsageError(message)


def run(args, config) -> int:
    """`infill batch`; returns the exit status (1 when some rows failed: run again to retry)."""
    if args.samples < 1:
        raise _usage("--samples must be at least 1")
    shard = Shard.from_env()
    out = args.output
    if out.is_dir():
        raise _usage(f"{out}: is a folder; -o names the output file")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        taskfile = read_tasks(args.input, args.format, args.language)
    except InputError as exc:
        raise _usage(str(exc)) from None
    tasks = taskfile.tasks[:args.limit] if args.limit is not None else taskfile.tasks
    say = _console(args.quiet or shard.rank != 0)
    for message in taskfile.bad:
        say(f"[yellow]skipped bad row[/] {message}")
    if args.samples > 1 and args.temperature == 0:
        say("[yellow]note[/] --samples > 1 at --temperature 0 gives identical greedy samples; "
            "pass@k wants e.g. --temperature 0.8")

    if shard.distributed and not config.device:
        import torch

        if torch.cuda.is_available():
            config.device = f"cuda:{shard.local_rank}"
    shard.start()
    try:
        order = [(t.task_id, s) for t in tasks for s in range(args.samples)]
        if shard.rank == 0 and part_files(out):
            merge(out, order)  # rank files of an interrupted launch join OUT before resuming
        shard.barrier()
        done = {row_key(r) for r in read_rows(out)[0]}
        pending = [(t, s) for t in tasks for s in range(args.samples) if (t.task_id, s) not in done]
        mine = pending[shard.rank::shard.world]
        target = out.with_name(f"{out.name}.rank{shard.rank}") if shard.distributed else out
        stats = _generate(mine, target, args, config, show=not args.quiet and shard.rank == 0,
                          label=f"rank {shard.rank}/{shard.world} " if shard.distributed else "")
        everything = shard.gather(stats)
        shard.barrier()
        if shard.rank == 0:
            merge(out, order)
        shard.barrier()
    finally:
        shard.stop()
    if shard.rank != 0:
        return 1 if stats.failed else 0
    total = Stats()
    for s in everything:
        total.add(s)
    if not args.quiet:
        _summary(taskfile, len(order), len(done & set(order)), total, out, args)
    return 1 if total.failed else 0


def request_for(task: Task, sample: int, args):
    from infill.request import InfillRequest

    multiline = {"auto": task.multiline, "yes": True, "no": False}[args.multiline]
    return InfillRequest(prefix=task.prefix, suffix=task.suffix, language=task.language,
                         path=task.path, engine=args.engine, max_tokens=args.max_tokens,
                         multiline=multiline, temperature=args.temperature,
                         seed=args.seed + sample)


def output_row(task: Task, sample: int, completion, batch_rows: int) -> dict:
    row = {"task_id": task.task_id, "sample": sample, **completion.to_json(), "batch": batch_rows}
    info = task.problem.get("safim")
    if isinstance(info, dict):
        text = safim.truncate(info.get("kind"), completion.text, task.prefix, task.suffix)
        if text != completion.text:
            row["guarded"] = completion.text  # before SAFIM's own truncation
            row["completion"] = text
    return row


def _generate(units: list[tuple[Task, int]], target: Path, args, config, show: bool,
              label: str) -> Stats:
    from infill.batched import BatchedEngines
    from infill.engines import Engines

    stats = Stats()
    start = time.perf_counter()
    writer = RowWriter(target)
    try:
        if not units:
            return stats
        try:
            requests = [request_for(task, sample, args) for task, sample in units]
        except ValueError as exc:
            raise _usage(str(exc)) from None
        engines = Engines(config)
        on_gpu = (config.device or "").startswith("cuda") or (
            not config.device and _cuda_available())
        batched = BatchedEngines(engines, args.batch_size or (32 if on_gpu else 8),
                                 args.max_batch_tokens or (32768 if on_gpu else 8192),
                                 guard=not getattr(args, "no_guard", False))
        with _progress(show) as progress:
            bar = progress.add_task(f"{label}infill batch", total=len(units), tokens="")
            for results in batched.complete_many(requests):
                size = len(results)
                for index, result in results:
                    task, sample = units[index]
                    if isinstance(result, Exception):
                        stats.failed += 1
                        stats.errors.append(f"{task.task_id} sample {sample}: "
                                            f"{type(result).__name__}: {result}")
                        continue
                    writer.write(output_row(task, sample, result, size))
                    stats.written += 1
                    stats.valid += result.valid
                    stats.tokens += result.tokens
                    stats.forwards += result.forwards
                    stats.engines[result.engine] += 1
                writer.sync()
                elapsed = time.perf_counter() - start
                progress.update(bar, advance=size,
                                tokens=f"{stats.tokens / max(elapsed, 1e-9):.0f} tok/s")
    finally:
        writer.close()
        stats.seconds = time.perf_counter() - start
    return stats


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _console(quiet: bool):
    from rich.console import Console

    console = Console(stderr=True)

    def say(message: str) -> None:
        if not quiet:
            console.print(message, highlight=False)

    return say


def _progress(show: bool):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} rows/s" if speed else "-- rows/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TextColumn("{task.fields[tokens]}"), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True),
                    disable=not show)


def _summary(taskfile: TaskFile, rows: int, resumed: int, stats: Stats, out: Path, args) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title="infill batch", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    seconds = max(stats.seconds, 1e-9)
    lines = [("tasks x samples", f"{rows // max(args.samples, 1)} x {args.samples} = {rows}"),
             ("bad input rows (skipped)", str(len(taskfile.bad)))]
    if taskfile.other_language:
        lines.append(("rows in other languages (left out)", str(taskfile.other_language)))
    lines += [("already done (resumed)", str(resumed)), ("written this run", str(stats.written)),
              ("failed (run again to retry)", str(stats.failed))]
    if stats.written:
        lines += [("engines", ", ".join(f"{e} {n}" for e, n in sorted(stats.engines.items()))),
                  ("valid (syntax guard)", f"{stats.valid / stats.written:.1%}"),
                  ("tokens per row", f"{stats.tokens / stats.written:.1f}"),
                  ("rows/s", f"{stats.written / seconds:.2f}"),
                  ("tokens/s", f"{stats.tokens / seconds:.1f}")]
    lines += [("elapsed", f"{stats.seconds:.1f} s"), ("output", str(out))]
    for name, value in lines:
        table.add_row(name, value)
    console.print(table)
    for error in stats.errors[:10]:
        console.print(f"[red]failed[/] {error}", highlight=False)
    if taskfile.format == "safim":
        console.print(f"Data: {safim.ATTRIBUTION}", highlight=False)


# -- `infill bench batch` -----------------------------------------------------------------------


def add_bench_parser(bench_sub) -> None:
    """Registers `infill bench batch` under the `infill bench` group."""
    from infill.cli import add_model_options

    p = bench_sub.add_parser(
        "batch", help="throughput of batched infill vs one request at a time, same engine")
    p.add_argument("input", type=Path, help="JSONL tasks, or a SAFIM file or folder")
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--rows", type=int, default=32, help="tasks to complete (the first N)")
    p.add_argument("--engines", default="speculative,diffusion",
                   help="comma-separated: speculative, diffusion")
    p.add_argument("--batch-sizes", default="8,32", help="comma-separated batch sizes")
    p.add_argument("--max-batch-tokens", type=int, default=65536)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--language", default="python")
    p.add_argument("--json", type=Path, default=Path("bench-batch.json"), help="where the JSON goes")
    add_model_options(p)
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    import platform
    from datetime import datetime, timezone

    import torch
    from rich.console import Console
    from rich.table import Table

    from infill.batched import BatchedEngines
    from infill.router import is_multiline
    from infill.cli import model_config
    from infill.engines import Engines
    from infill.request import InfillRequest

    try:
        taskfile = read_tasks(args.input, args.format, args.language)
        sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
        kinds = [e.strip() for e in args.engines.split(",") if e.strip()]
    except (InputError, ValueError) as exc:
        raise _usage(str(exc)) from None
    if not taskfile.tasks or any(k not in ("speculative", "diffusion") for k in kinds):
        raise _usage("need tasks, and --engines from speculative, diffusion")
    tasks = taskfile.tasks[:args.rows]
    engines = Engines(model_config(args))

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    results = []
    for kind in kinds:
        requests = []
        for t in tasks:
            r = InfillRequest(prefix=t.prefix, suffix=t.suffix, language=t.language, path=t.path,
                              engine=kind, max_tokens=args.max_tokens, multiline=t.multiline)
            r.multiline = is_multiline(r)  # decided once, so both paths get the same shape
            requests.append(r)
        engines.complete(requests[0])  # load and warm up both paths
        list(BatchedEngines(engines, 2).complete_many(requests[:2]))
        sync()
        start = time.perf_counter()
        sequential = [engines.complete(r)[0] for r in requests]
        sync()
        seconds = time.perf_counter() - start
        base = {"engine": kind, "mode": "one at a time", "batch_size": 1,
                "rows": len(requests), "seconds": seconds,
                "tokens": sum(c.tokens for c in sequential)}
        results.append(base)
        for size in sizes:
            batched = BatchedEngines(engines, size, args.max_batch_tokens)
            sync()
            start = time.perf_counter()
            got = {}
            for batch in batched.complete_many(requests):
                got.update(batch)
            sync()
            seconds = time.perf_counter() - start
            done = [got[i] for i in range(len(requests)) if not isinstance(got[i], Exception)]
            same = sum(1 for i, c in enumerate(sequential)
                       if not isinstance(got[i], Exception) and got[i].text == c.text)
            results.append({"engine": kind, "mode": "batched", "batch_size": size,
                            "rows": len(requests), "seconds": seconds,
                            "tokens": sum(c.tokens for c in done),
                            "failed": len(requests) - len(done),
                            "same_text_as_one_at_a_time": same / len(requests)})
    for r in results:
        r["rows_per_s"] = r["rows"] / r["seconds"]
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        first = next(b for b in results if b["engine"] == r["engine"] and b["batch_size"] == 1
                     and b["mode"].startswith("one"))
        r["speedup"] = r["rows_per_s"] / first["rows_per_s"]

    device = engines.ar.device if "speculative" in kinds else engines.diffusion.device
    machine = {"device": str(device), "gpu": torch.cuda.get_device_name(device)
               if device.type == "cuda" else None, "cpu_count": os.cpu_count(),
               "torch": torch.__version__, "platform": platform.platform()}
    report = {"benchmark": "infill bench batch", "date": datetime.now(timezone.utc).isoformat(),
              "command": "infill " + " ".join(sys.argv[1:]), "input": str(args.input), "rows": len(tasks),
              "max_tokens": args.max_tokens, "machine": machine, "results": results}
    if taskfile.format == "safim":
        report["data"] = safim.ATTRIBUTION
    table = Table(title=f"infill bench batch: {len(tasks)} rows, max {args.max_tokens} tokens, "
                        f"{machine['gpu'] or 'CPU'}; one at a time = Engines.complete, "
                        "batched = infill batch")
    for column in ("engine", "mode", "batch", "seconds", "rows/s", "tokens/s", "speedup",
                   "same text"):
        table.add_column(column)
    for r in results:
        same = r.get("same_text_as_one_at_a_time")
        table.add_row(r["engine"], r["mode"], str(r["batch_size"]), f"{r['seconds']:.2f}",
                      f"{r['rows_per_s']:.2f}", f"{r['tokens_per_s']:.1f}",
                      f"{r['speedup']:.2f}x", "" if same is None else f"{same:.0%}")
    console = Console(width=max(Console().width, 120))
    console.print(table)
    if taskfile.format == "safim":
        console.print(f"Data: {safim.ATTRIBUTION}", highlight=False)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.json}")
    return 0
