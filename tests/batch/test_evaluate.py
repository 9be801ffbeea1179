"""pass@k is the unbiased estimator; `infill eval` scores executed, exact and parsed."""

import json
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infill.cli import main
from infill.evaluate import pass_at_k

from batch_cases import write_jsonl


@pytest.mark.parametrize("n, c, k, expected", [
    (1, 1, 1, 1.0), (1, 0, 1, 0.0), (10, 0, 5, 0.0), (5, 2, 1, 0.4),
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 1, 2, 0.5), (10, 3, 10, 1.0), (200, 1, 100, 0.5)])
def test_pass_at_k_known_cases(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@given(st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_one_minus_the_chance_that_k_draws_all_fail(case):
    n, c, k = case
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-9)


PROBLEMS = [
    {"task_id": "add", "prompt": "def add(a, b):\n    return ", "suffix": "\n",
     "canonical_solution": "a + b", "entry_point": "add",
     "test": "def check(f):\n    assert f(1, 2) == 3\n    assert f(-1, 1) == 0\n"},
    {"task_id": "neg", "prompt": "def neg(x):\n    return ", "suffix": "\n",
     "canonical_solution": "-x", "entry_point": "neg", "test": "def check(f):\n    assert f(2) == -2\n"},
]
ROWS = [  # add: 1 of 4 passes (one loops forever, one does not parse); neg: 2 of 2
    {"task_id": "add", "sample": 0, "completion": "a + b", "engine": "speculative", "valid": True},
    {"task_id": "add", "sample": 1, "completion": "a - b", "engine": "speculative", "valid": True},
    {"task_id": "add", "sample": 2, "completion": "a +", "engine": "speculative", "valid": False},
    {"task_id": "add", "sample": 3, "completion": "[0 for _ in iter(int, 1)]",
     "engine": "speculative", "valid": True},
    {"task_id": "neg", "sample": 0, "completion": "-x", "engine": "speculative", "valid": True},
    {"task_id": "neg", "sample": 1, "completion": "0 - x", "engine": "speculative", "valid": True},
]


def test_eval_scores_a_humaneval_style_run(tmp_path, capsys):
    problems = write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    out = write_jsonl(tmp_path / "out.jsonl", ROWS + ["{not json"])
    report_path = tmp_path / "report.json"
    details = tmp_path / "details.jsonl"
    code = main(["eval", str(out), "--problems", str(problems), "--timeout", "2",
                 "--k", "1,2,4", "--json", str(report_path), "--details", str(details),
                 "--workers", "2"])
    assert code == 0
    report = json.loads(report_path.read_text())
    g = report["groups"]["all"]
    assert g["tasks"] == 2 and g["samples"] == 6
    assert g["pass@1"] == pytest.approx((1 / 4 + 1) / 2)
    assert g["pass@2"] == pytest.approx((pass_at_k(4, 1, 2) + 1) / 2)
    assert "pass@4" not in g  # neg has only 2 samples
    assert g["exact_match"] == pytest.approx(2 / 6)
    assert g["parses"] == pytest.approx(5 / 6)
    assert g["valid"] == pytest.approx(5 / 6)
    assert 0 < g["edit_similarity"] < 1
    assert g["outcomes"]["failed: timeout"] == 1
    assert report["sandbox"]["applied"]
    statuses = {(d["task_id"], d["sample"]): d["status"]
                for d in map(json.loads, details.read_text().splitlines())}
    assert statuses[("add", 0)] == "passed" and statuses[("add", 2)] == "failed: error"
    printed = capsys.readouterr().out
    assert "pass@1" in printed and "pass@2" in printed


def test_eval_of_a_missing_output_is_a_usage_error(tmp_path, capsys):
    problems = write_jsonl(tmp_path / "problems.jsonl", PROBLEMS)
    assert main(["eval", str(tmp_path / "none.jsonl"), "--problems", str(problems)]) == 2
    assert "no such file" in capsys.readouterr().err
