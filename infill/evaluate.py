"""`infill eval OUT.jsonl --problems IN.jsonl`: how good the completions of a batch run are.

Per sample: executed in the sandbox (`infill.sandbox`) where the problem has tests, exact match
and edit similarity against the reference, and whether the whole program parses. Per task and
group: pass@k with the unbiased estimator of Chen et al. 2021 (the human-eval harness's
`estimate_pass_at_k`), means of the rest. Problems are read with `infill.batch.read_tasks`, the
parse `infill batch` uses.

Execution:
- human-eval-infilling rows (`test`, `entry_point`): prompt + completion + suffix + test +
  `check(entry_point)` must exit 0, as in its harness (whose own `exec` is disabled).
- SAFIM rows (see `infill.safim`): equal to the ground truth passes; block and control rows
  run each unit test (stdin -> stdout), stopping at the first failure; API rows pass on a
  syntax match.
Reference for exact match and edit similarity: `canonical_solution` or SAFIM's ground truth.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from infill import safim, sandbox
from infill.batch import FORMATS, InputError, Task, read_rows, read_tasks, row_key


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples passes) from n samples, c passing:
    1 - C(n-c, k) / C(n, k), as a numerically stable product."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@dataclass
class SampleScore:
    task_id: str
    sample: int
    engine: str
    group: str
    passed: bool | None  # None: the problem has no tests
    status: str  # "passed", "failed: <how>", "exact", "syntax_match", "no tests"
    exact: bool | None
    similarity: float | None
    parses: bool | None
    valid: bool | None  # the syntax guard's verdict, from the batch row


def group_of(task: Task) -> str:
    info = task.problem.get("safim")
    if isinstance(info, dict):
        return f"safim-{info.get('kind')}"
    return "all"


def reference_of(task: Task) -> str | None:
    info = task.problem.get("safim")
    if isinstance(info, dict):
        return info.get("ground_truth")
    ref = task.problem.get("canonical_solution")
    return ref if isinstance(ref, str) else None


def score(task: Task, row: dict, limits: sandbox.Limits) -> SampleScore:
    completion = row.get("completion")
    completion = completion if isinstance(completion, str) else ""
    reference = reference_of(task)
    passed, status = execute(task, completion, limits)
    exact = similarity = None
    if reference is not None:
        from rapidfuzz.distance import Levenshtein

        exact = completion.strip() == reference.strip()
        similarity = Levenshtein.normalized_similarity(completion.strip(), reference.strip())
    valid = row.get("valid")
    return SampleScore(task.task_id, int(row.get("sample", 0)), str(row.get("engine", "")),
                       group_of(task), passed, status, exact, similarity,
                       program_parses(task, completion), valid if isinstance(valid, bool) else None)


def execute(task: Task, completion: str, limits: sandbox.Limits) -> tuple[bool | None, str]:
    problem = task.problem
    info = problem.get("safim")
    if isinstance(info, dict):
        if info.get("kind") == "api":
            ok = safim.syntax_match(completion, info.get("ground_truth", ""))
            return ok, "syntax_match" if ok else "failed: no syntax match"
        if completion == info.get("ground_truth"):
            return True, "exact"
        tests = info.get("unit_tests") or []
        if not tests:
            return None, "no tests"
        program = task.prefix + completion + task.suffix
        for test in tests:
            result = sandbox.run_python(program, stdin=str(test.get("input", "")), limits=limits)
            if not result.ok:
                return False, f"failed: {result.status}"
            if not safim.output_matches(result.stdout, test.get("output", [])):
                return False, "failed: wrong answer"
        return True, "passed"
    test = problem.get("test")
    if not isinstance(test, str) or not test.strip():
        return None, "no tests"
    program = task.prefix + completion + task.suffix + "\n\n" + test + "\n"
    entry = problem.get("entry_point")
    if isinstance(entry, str) and entry:
        program += f"\ncheck({entry})\n"
    result = sandbox.run_python(program, limits=limits)
    return (True, "passed") if result.ok else (False, f"failed: {result.status}")


def program_parses(task: Task, completion: str) -> bool | None:
    """Python: the whole program compiles (to an AST). Other languages: the tree-sitter guard's
    check, that the completion adds no syntax error. None for a language with no grammar."""
    text = task.prefix + completion + task.suffix
    language = (task.language or "").lower()
    if language == "python" or (not language and (task.path or "").endswith(".py")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ast.parse(text)
            return True
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    from infill import syntax

    grammar = syntax.language_for(task.language, task.path)
    if grammar is None:
        return None
    return syntax.check(task.prefix, completion, task.suffix, grammar).valid


def summarise(scores: list[SampleScore], ks: list[int]) -> dict:
    """pass@k (for each k every tested task has samples for), exact match, edit similarity,
    parse and guard-valid shares, and execution outcomes."""
    by_task = defaultdict(list)
    for s in scores:
        by_task[s.task_id].append(s)
    tested = {t: ss for t, ss in by_task.items() if any(s.passed is not None for s in ss)}
    result = {"tasks": len(by_task), "samples": len(scores), "tasks_with_tests": len(tested)}
    if tested:
        counts = [(sum(s.passed is not None for s in ss), sum(bool(s.passed) for s in ss))
                  for ss in tested.values()]
        least = min(n for n, _ in counts)
        for k in ks:
            if k <= least:
                result[f"pass@{k}"] = float(np.mean([pass_at_k(n, c, k) for n, c in counts]))

    def mean(values):
        values = [float(v) for v in values if v is not None]
        return float(np.mean(values)) if values else None

    result["exact_match"] = mean(s.exact for s in scores)
    result["edit_similarity"] = mean(s.similarity for s in scores)
    result["parses"] = mean(s.parses for s in scores)
    result["valid"] = mean(s.valid for s in scores)
    outcomes = defaultdict(int)
    for s in scores:
        outcomes[s.status] += 1
    result["outcomes"] = dict(sorted(outcomes.items()))
    return result


def evaluate(tasks: list[Task], rows: list[dict], ks: list[int], limits: sandbox.Limits,
             workers: int, progress=None) -> tuple[list[SampleScore], dict]:
    by_id = {t.task_id: t for t in tasks}
    pairs = [(by_id[str(r["task_id"])], r) for r in rows if str(r["task_id"]) in by_id]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = [pool.submit(score, task, row, limits) for task, row in pairs]
        scores = []
        for future in futures:
            scores.append(future.result())
            if progress:
                progress()
    groups = {"all": scores}
    for s in scores:
        if s.group != "all":
            groups.setdefault(s.group, []).append(s)
    engines = sorted({s.engine for s in scores})
    if len(engines) > 1:
        for engine in engines:
            groups[f"engine {engine}"] = [s for s in scores if s.engine == engine]
    return scores, {name: summarise(ss, ks) for name, ss in groups.items()}


def add_arguments(parser) -> None:
    parser.add_argument("output", type=Path, help="rows written by `infill batch`")
    parser.add_argument("--problems", type=Path, required=True,
                        help="the batch input (tests and references), or the SAFIM file/folder")
    parser.add_argument("--format", choices=FORMATS, default="auto")
    parser.add_argument("--language", default="python",
                        help="languageId of problems that name none (default python)")
    parser.add_argument("--k", default="1,10,100", help="pass@k for these k (where samples allow)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per program run")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address space per program run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="programs run at once")
    parser.add_argument("--json", type=Path, help="report JSON (default: OUT.eval.json)")
    parser.add_argument("--details", type=Path, help="also write one JSON line per sample here")


def run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from infill.cli import UsageError

    try:
        ks = sorted({int(k) for k in args.k.split(",") if k.strip()})
        problems = read_tasks(args.problems, args.format, args.language)
    except (InputError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not args.output.is_file():
        raise UsageError(f"{args.output}: no such file")
    rows, broken = read_rows(args.output)
    err = Console(stderr=True)
    for message in problems.bad:
        err.print(f"[yellow]skipped bad problem row[/] {message}", highlight=False)
    known = {t.task_id for t in problems.tasks}
    unknown = sorted({str(r["task_id"]) for r in rows} - known)
    if broken or unknown:
        err.print(f"[yellow]left out[/] {broken} unreadable output lines, {len(unknown)} task ids "
                  f"not among the problems{': ' + ', '.join(unknown[:5]) if unknown else ''}",
                  highlight=False)
    seen, unique = set(), []
    for row in rows:  # a row written twice (two runs into one file) counts once
        if row_key(row) not in seen and str(row["task_id"]) in known:
            seen.add(row_key(row))
            unique.append(row)
    limits = sandbox.Limits(seconds=args.timeout, memory_mb=args.memory_mb)
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, disable=not unique) as progress:
        bar = progress.add_task("infill eval", total=len(unique))
        scores, groups = evaluate(problems.tasks, unique, ks, limits, args.workers,
                                  lambda: progress.advance(bar))
    covered = {s.task_id for s in scores}
    report = {"output": str(args.output), "problems": str(args.problems),
              "problems_total": len(problems.tasks), "problems_without_output":
              len(problems.tasks) - len(covered), "limits": asdict(limits),
              "sandbox": sandbox.guarantees(), "groups": groups}
    if problems.format == "safim":
        report["data"] = safim.ATTRIBUTION
    _table(report, ks)
    path = args.json or args.output.with_name(args.output.name + ".eval.json")
    path.write_text(json.dumps(report, indent=2) + "\n")
    if args.details:
        with open(args.details, "w", encoding="utf-8") as f:
            for s in scores:
                f.write(json.dumps(asdict(s)) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _table(report: dict, ks: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    groups = report["groups"]
    shown = [k for k in ks if any(f"pass@{k}" in g for g in groups.values())]
    table = Table(title=f"infill eval: {report['output']} "
                        f"({report['problems_total'] - report['problems_without_output']} of "
                        f"{report['problems_total']} problems have completions)")
    for column in ["group", "tasks", "samples"] + [f"pass@{k}" for k in shown] + [
            "exact", "edit sim", "parses", "valid"]:
        table.add_column(column, justify="right" if column != "group" else "left")

    def pct(value):
        return "-" if value is None else f"{value:.1%}"

    for name, g in groups.items():
        table.add_row(name, str(g["tasks"]), str(g["samples"]),
                      *[pct(g.get(f"pass@{k}")) for k in shown], pct(g["exact_match"]),
                      pct(g["edit_similarity"]), pct(g["parses"]), pct(g["valid"]))
    console = Console(width=max(Console().width, 120))
    console.print(table)
    missing = report["sandbox"]["missing"]
    console.print(f"sandbox: {', '.join(report['sandbox']['applied']) or 'nothing'} applied"
                  + (f"; not available here: {', '.join(missing)}" if missing else ""),
                  highlight=False)
    if "data" in report:
        console.print(f"Data: {report['data']}", highlight=False)
