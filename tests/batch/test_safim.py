"""SAFIM's Python rows become batch rows; its truncation and scoring rules hold; its ground
truth passes its own unit tests in our sandbox.

Data: SAFIM (Gong et al. 2024), CC-BY-4.0; problems derived from Codeforces."""

import json
from collections import Counter
from pathlib import Path

import pytest

from infill import safim
from infill.batch import read_tasks
from infill.cli import main

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "safim"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="no ../shared/data/safim here")


@pytest.fixture(scope="module")
def tasks():
    return read_tasks(DATA)


@needs_data
def test_the_python_rows_of_each_kind_are_read(tasks):
    assert tasks.format == "safim" and tasks.bad == []
    kinds = Counter(t.problem["safim"]["kind"] for t in tasks.tasks)
    assert kinds == {"block": 805, "control": 750, "api": 181}
    assert len({t.task_id for t in tasks.tasks}) == len(tasks.tasks)  # API ids reuse block ids


@needs_data
def test_a_row_is_split_at_its_gap(tasks):
    task = next(t for t in tasks.tasks if t.task_id == "control/control_completion_000016")
    assert task.prefix.endswith("for i in range(n):\n    if ") and "\r" not in task.prefix
    assert task.suffix.startswith("\n        continue\n")
    assert task.problem["safim"]["ground_truth"] == "i in graph[i]:"
    assert task.multiline is False and task.language == "python"
    tests = task.problem["safim"]["unit_tests"]
    assert tests[0] == {"input": "4 3\n1 2 3\n1 3 2\n4 1 2", "output": ["0 3 2 2"]}


def test_block_truncation_keeps_the_one_block_that_fits():
    prefix = "for i in range(3):\n    if i:\n        "
    suffix = "\n    print(i)\n"
    completion = "x = i\n        y = x\n    print('extra')\nprint(1)\n"
    assert safim.truncate("block", completion, prefix, suffix) == "x = i\n        y = x\n"
    assert safim.truncate("block", "x = (", prefix, suffix) == ""


def test_control_and_api_truncation():
    assert safim.truncate("control", "\n  i in graph[i]:\n        pass", "", "") == "  i in graph[i]:"
    assert safim.truncate("api", "np.sum(x, axis=(0, 1)).mean()\nfoo()", "", "") == \
        "np.sum(x, axis=(0, 1))"


def test_api_rows_pass_on_a_syntax_match():
    assert safim.syntax_match("np.sum(grad,  axis=0)", "np.sum(grad, axis=0)")
    assert safim.syntax_match("f(a, key=1)", "f(a,key=1)")
    assert not safim.syntax_match("np.sum(grad, axis=1)", "np.sum(grad, axis=0)")


def test_outputs_compare_by_tokens():
    assert safim.output_matches("1 2\n3 \n", ["1 2 3"])
    assert safim.output_matches("YES\nno\n", ["Yes\nNO"])
    assert safim.output_matches("0.3333333\n", ["0.333333333"])
    assert not safim.output_matches("1 2", ["1 2 3"])
    assert not safim.output_matches("10", ["1"])


@needs_data
def test_the_ground_truth_passes_through_infill_eval(tasks, tmp_path, capsys):
    """A few block and control rows, each with a small change that keeps it correct (so the
    unit tests run, not the exact-match shortcut), and one API row."""
    picked = [t for t in tasks.tasks if t.task_id in (
        "block/block_completion_000016", "control/control_completion_000016",
        "api/block_completion_000129")]
    rows = []
    for t in picked:
        truth = t.problem["safim"]["ground_truth"]
        text = truth if t.problem["safim"]["kind"] == "api" else truth + "  "
        rows.append({"task_id": t.task_id, "sample": 0, "completion": text, "engine": "x"})
    rows.append({"task_id": picked[0].task_id, "sample": 1, "completion": "print(1)",
                 "engine": "x"})
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report_path = tmp_path / "report.json"
    assert main(["eval", str(out), "--problems", str(DATA), "--json", str(report_path),
                 "--workers", "2"]) == 0
    report = json.loads(report_path.read_text())
    assert "CC-BY-4.0" in report["data"] and "Codeforces" in report["data"]
    assert report["groups"]["safim-block"]["pass@1"] == 0.5
    assert report["groups"]["safim-control"]["pass@1"] == 1.0
    assert report["groups"]["safim-api"]["pass@1"] == 1.0
    assert "Codeforces" in capsys.readouterr().out
