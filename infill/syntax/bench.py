"""Benchmark: a full tree-sitter parse against the guard's incremental check.

    python -m infill.syntax.bench [--lines 2000] [--repeats 200] [--json runs/syntax_bench.json]

Generates a Python file of `--lines` lines, puts the cursor on an empty line in a function body
near the middle, and times (median and p90 over `--repeats` runs, one thread):

- full parse: parsing prefix + completion + suffix from scratch, what a naive check costs;
- incremental, whole file: editing the tree of the whole prefix + suffix and reparsing it, which
  is what `check` would cost without its window (tree-sitter-python redoes everything after an
  edit at the start of a block, so this is far from free);
- check (warm): `check` with the tree of the window around the cursor cached (edit + incremental
  reparse of the window + error matching), the per-candidate cost once a cursor has been seen;
- check (cold): the same with an empty cache: a full parse of prefix + suffix to find the window,
  the window's parse, then the above (once per cursor, shared by all its candidates);
- check (broken doc): warm, in a document with a syntax error 200 lines above the cursor;
- guard (multi-line): the whole pipeline on a 6-line completion whose last line is invalid.

Prints a table and writes the numbers as JSON. Timing figures belong in BENCHMARKS.md with the
command, machine and date, not in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from . import check, guard, language_for, validity

COMPLETION = "total = sum(values)\n        count = len(values)"
GUARD_COMPLETION = (
    "total = sum(values)\n        count = len(values)\n        if count == 0:\n"
    "            return 0.0\n        mean = total / count\n        return round(mean, (2"
)


def generate_python(lines: int) -> str:
    """A plausible Python module of about `lines` lines: classes with methods."""
    chunks, count, i = ['"""Generated module for the syntax guard benchmark."""\n\nimport math\n\n'], 4, 0
    while count < lines:
        chunk = (
            f"class Shape{i}:\n"
            f"    def __init__(self, width, height):\n"
            f"        self.width = width\n"
            f"        self.height = height\n"
            f"\n"
            f"    def area(self):\n"
            f"        return self.width * self.height * {i}\n"
            f"\n"
            f"    def describe(self, values):\n"
            f"        parts = [str(v) for v in values if v > {i}]\n"
            f"        return ', '.join(parts) + f\"{{math.pi:.2f}}\"\n"
            f"\n\n"
        )
        chunks.append(chunk)
        count += chunk.count("\n")
        i += 1
    return "".join(chunks)


def cursor_in_the_middle(source: str) -> tuple[str, str]:
    """Prefix and suffix around an empty line opened in the middle `describe` method's body."""
    marker = "    def describe(self, values):\n"
    middle = len(source) // 2
    at = source.index(marker, middle) + len(marker)
    return source[:at] + "        ", "\n" + source[at:]


def break_far_above(prefix: str, lines: int) -> str:
    """`prefix` with a syntax error (a missing `)`) about `lines` lines above the cursor."""
    cursor_line = prefix.count("\n")
    line_starts = [0] + [i + 1 for i, ch in enumerate(prefix) if ch == "\n"]
    at = prefix.find("    def area(self):", line_starts[max(cursor_line - lines, 0)])
    at = at if at >= 0 else prefix.find("    def area(self):")
    return prefix[:at] + "    def area(self:" + prefix[at + len("    def area(self):") :]


def timed(function, repeats: int) -> dict:
    for _ in range(min(5, repeats)):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        function()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * (len(samples) - 1))],
        "runs": repeats,
    }


def run(lines: int, repeats: int) -> dict:
    python = language_for("python")
    source = generate_python(lines)
    prefix, suffix = cursor_in_the_middle(source)
    document = (prefix + COMPLETION + suffix).encode()
    broken_prefix = break_far_above(prefix, 200)

    def cold_check():
        validity._cache.clear()
        return check(prefix, COMPLETION, suffix, python)

    assert check(prefix, COMPLETION, suffix, python).valid
    assert check(broken_prefix, COMPLETION, suffix, python).valid
    # The whole document as check's base, without the window, for the reference row.
    before, after = prefix.encode(), suffix.encode()
    whole_tree = python.parse(before + after)
    whole = validity._BaseDocument(0, before, after, whole_tree, (), validity._end_point(before), 0, 0, False)
    results = {
        "full parse": timed(lambda: python.parse(document), repeats),
        "incremental, whole file": timed(
            lambda: validity._parse_with_insertion(python, whole, COMPLETION.encode()), repeats
        ),
        "check (warm)": timed(lambda: check(prefix, COMPLETION, suffix, python), repeats),
        "check (cold)": timed(cold_check, repeats),
        "check (broken doc)": timed(lambda: check(broken_prefix, COMPLETION, suffix, python), repeats),
        "guard (multi-line)": timed(
            lambda: guard(prefix, suffix, GUARD_COMPLETION, "python", multiline=True), repeats
        ),
    }
    return {
        "benchmark": "infill.syntax.bench",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tree_sitter": metadata.version("tree-sitter"),
            "tree_sitter_python": metadata.version("tree-sitter-python"),
        },
        "document": {"lines": source.count("\n"), "bytes": len(document), "cursor_line": prefix.count("\n")},
        "results": results,
        "speedup_full_over_warm_check": results["full parse"]["median_ms"]
        / results["check (warm)"]["median_ms"],
    }


def print_table(report: dict) -> None:
    doc = report["document"]
    print(f"Python document: {doc['lines']} lines, {doc['bytes']} bytes, cursor on line {doc['cursor_line']}")
    print(f"{'measurement':<22} {'median ms':>10} {'p90 ms':>10} {'runs':>6}")
    for name, numbers in report["results"].items():
        print(f"{name:<22} {numbers['median_ms']:>10.3f} {numbers['p90_ms']:>10.3f} {numbers['runs']:>6}")
    print(f"full parse / warm check: {report['speedup_full_over_warm_check']:.1f}x")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path("runs/syntax_bench.json"))
    args = parser.parse_args(argv)
    report = run(args.lines, args.repeats)
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
