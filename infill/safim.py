"""SAFIM (Syntax-Aware Fill-in-the-Middle; Gong, Wang, Chen, Fried, ICML 2024) as batch input.

SAFIM is licensed CC-BY-4.0 and its problems derive from Codeforces: `ATTRIBUTION` goes with
every result computed on it (the batch summary and the eval table and JSON carry it).

Its v1 files (`block_completion`, `control_completion`, `api_completion`, gzipped JSONL) hold
rows `{lang, prompt, eval_prompt, ground_truth, unit_tests, task_id}`; `eval_prompt` is the
program with `{{completion}}` at the gap. A row becomes a batch row: prefix and suffix around
the gap (CRLF normalised to LF: 80% of the Python rows use CRLF, which neither engine was trained
on; the program run by `infill eval` is normalised the same way), task_id `<kind>/<task_id>`
(API rows reuse block task ids), and the scoring data under `safim`.

After generation each completion gets SAFIM's own syntax-aware truncation (prompt_utils.py of
the SAFIM repository, re-implemented here on the tree-sitter wheels):
- block: drop trailing lines until the program parses and its syntax tree differs from the
  program with `pass` in the gap in exactly that one statement;
- control: Python keeps the first non-blank line;
- API call: cut at the `)` that balances the first `(`.
Scoring (its evaluate.py): a completion equal to the ground truth passes; otherwise block and
control rows run their unit tests (stdin -> stdout, all must pass), API rows pass on a syntax
match of the call (same arguments, whitespace ignored).
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

ATTRIBUTION = ("SAFIM (Gong et al. 2024), CC-BY-4.0, https://github.com/gonglinyuan/safim; "
               "problems derived from Codeforces (https://codeforces.com)")
KINDS = ("block", "control", "api")
PLACEHOLDER = "{{completion}}"
# The position shape each kind asks for: a block spans lines, a Python control expression is
# the rest of one line, an API call is left to the engine (most fit on a line, some do not).
MULTILINE = {"block": True, "control": False, "api": None}


def files(path: Path) -> list[tuple[Path, str | None]]:
    """(file, kind) for a SAFIM file, or for each v1 file in a SAFIM folder."""
    path = Path(path)
    if path.is_dir():
        found = [(path / f"{k}_completion.jsonl.gz", k) for k in KINDS]
        return [(p, k) for p, k in found if p.exists()]
    return [(path, kind_of(path))]


def kind_of(path: Path) -> str | None:
    name = Path(path).name
    return next((k for k in KINDS if name.startswith(f"{k}_completion")), None)


def is_safim(path: Path) -> bool:
    path = Path(path)
    return (path.is_dir() and bool(files(path))) or kind_of(path) is not None


def open_text(path: Path):
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def rows(path: Path, language: str = "python") -> Iterator[tuple[str, int, dict | str | None]]:
    """(file name, line number, batch row | reason it is bad | None for another language)."""
    for file, kind in files(path):
        with open_text(file) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield file.name, number, f"not JSON ({exc.msg})"
                    continue
                if not isinstance(row, dict):
                    yield file.name, number, "not a JSON object"
                    continue
                if language and str(row.get("lang", "")).lower() != language:
                    yield file.name, number, None
                    continue
                try:
                    yield file.name, number, convert(row, kind or row.get("kind"))
                except ValueError as exc:
                    yield file.name, number, str(exc)


def convert(row: dict, kind: str | None) -> dict:
    """A SAFIM row -> a batch row (ValueError says why it cannot be one)."""
    if kind not in KINDS:
        raise ValueError("unknown SAFIM kind: name the file <block|control|api>_completion...")
    for name in ("task_id", "eval_prompt", "ground_truth"):
        if not isinstance(row.get(name), str):
            raise ValueError(f"missing or non-string '{name}'")
    program = normalise(row["eval_prompt"])
    if program.count(PLACEHOLDER) != 1:
        raise ValueError(f"eval_prompt must hold {PLACEHOLDER} exactly once")
    prefix, suffix = program.split(PLACEHOLDER)
    tests = row.get("unit_tests") or []
    if isinstance(tests, str):
        tests = json.loads(tests)  # the HF copy of the data stores them as a string
    if not isinstance(tests, list):
        raise ValueError("unit_tests must be a list")
    return {"task_id": f"{kind}/{row['task_id']}", "prompt": prefix, "suffix": suffix,
            "language": str(row.get("lang", "python")).lower(), "multiline": MULTILINE[kind],
            "safim": {"kind": kind, "task_id": row["task_id"],
                      "ground_truth": normalise(row["ground_truth"]), "unit_tests": tests}}


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n")


# -- SAFIM's truncation -------------------------------------------------------------------------


def truncate(kind: str, completion: str, prefix: str, suffix: str) -> str:
    if kind == "block":
        return truncate_block(completion, prefix, suffix)
    if kind == "control":
        return truncate_to_first_line(completion)
    if kind == "api":
        return truncate_api_call(completion)
    return completion


def truncate_to_first_line(completion: str) -> str:
    return next((line for line in completion.splitlines() if line.strip()), "")


def truncate_api_call(completion: str) -> str:
    depth = 0
    for i, ch in enumerate(completion):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth <= 0:
                return completion[:i + 1]
    return completion


def truncate_block(completion: str, prefix: str, suffix: str) -> str:
    """Drop trailing lines until prefix + completion + suffix parses and its tree equals the
    tree with `pass` in the gap except for that one statement (SAFIM's
    truncate_line_until_block, Python)."""
    base_events, base_errors = _events(prefix + "pass" + suffix)
    lines = completion.splitlines(keepends=True)
    while lines:
        events, errors = _events(prefix + "".join(lines) + suffix)
        if errors == 0:
            if base_errors:  # SAFIM asserts the base parses; without one, parsing is the test
                break
            if len(base_events) <= len(events):
                head, tail = _common_ends(base_events, events)
                # `pass` is 4 events: enter/leave of pass_statement and of its "pass" token
                if len(base_events) - (head + tail) - 4 == 0:
                    break
        lines.pop()
    return "".join(lines)


def _common_ends(a: list, b: list) -> tuple[int, int]:
    head = 0
    while head < len(a) and head < len(b) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < len(a) and tail < len(b) and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head, tail


_local = threading.local()


def _parser():
    parser = getattr(_local, "parser", None)
    if parser is None:
        import tree_sitter
        import tree_sitter_python

        parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))
        _local.parser = parser
    return parser


def _events(code: str) -> tuple[list[tuple[bool, str]], int]:
    """The (enter?, node type) events of a depth-first walk and the number of ERROR nodes, as
    SAFIM's ErrorCheckVisitor records them (it does not descend into ERROR nodes and ignores
    an ERROR that is a lone ';')."""
    cursor = _parser().parse(code.encode("utf-8")).walk()
    events, errors = [], 0
    while True:
        node = cursor.node
        events.append((True, node.type))
        is_error = node.type == "ERROR"
        if is_error and node.text != b";":
            errors += 1
        if not is_error and cursor.goto_first_child():
            continue
        events.append((False, node.type))
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return events, errors
            events.append((False, cursor.node.type))


def parses(code: str) -> bool:
    """SAFIM's check_syntax: no ERROR node in the program."""
    return _events(code)[1] == 0


# -- SAFIM's scoring rules ------------------------------------------------------------------------


def syntax_match(completion: str, ground_truth: str) -> bool:
    """Whitespace-free equality, or for Python calls equal positional and keyword arguments."""
    a, b = re.sub(r"\s+", "", completion), re.sub(r"\s+", "", ground_truth)
    try:
        call_a, call_b = ast.parse(a, mode="eval").body, ast.parse(b, mode="eval").body
        if isinstance(call_a, ast.Call) and isinstance(call_b, ast.Call):
            return _call_args(call_a) == _call_args(call_b)
    except (SyntaxError, ValueError, RecursionError):
        pass
    return a == b


def _call_args(call: ast.Call):
    return [ast.dump(a) for a in call.args], {k.arg: ast.dump(k.value) for k in call.keywords}


FLOAT_TOLERANCE = 1e-6


def output_matches(actual: str, expected: list[str] | str) -> bool:
    """Whitespace-separated tokens equal to one of the expected outputs; YES/NO in any case;
    tokens of an expected real number (with a '.') may differ by FLOAT_TOLERANCE, absolute or
    relative (the usual Codeforces checkers). Checked: the ground truth of a random 300 Python
    block/control rows passes with this rule (see tests/batch)."""
    options = [expected] if isinstance(expected, str) else list(expected)
    got = actual.split()
    return any(_tokens_match(got, option.split()) for option in options)


def _tokens_match(got: list[str], want: list[str]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if g == w or (g.lower() == w.lower() and w.lower() in ("yes", "no")):
            continue  # "print YES or NO, in any case" is the Codeforces convention
        if "." not in w:
            return False
        try:
            gv, wv = float(g), float(w)
        except ValueError:
            return False
        if abs(gv - wv) > FLOAT_TOLERANCE * max(1.0, abs(wv)):
            return False
    return True
