"""`infill batch`: rows as the issue lists them, bad rows skipped with their line numbers, and
nothing lost or duplicated when a run is killed and started again, or split over processes."""

import os
import signal
import subprocess
import sys
import time

from infill.batch import drop_partial_line, merge, read_rows
from infill.cli import main

from batch_cases import REPO, code_tasks, read_jsonl, write_jsonl

FIELDS = {"task_id", "sample", "completion", "engine", "model", "tokens", "forwards", "ms",
          "valid", "truncated", "batch"}


def models(tiny_models) -> list[str]:
    return ["--target", str(tiny_models["target"]), "--diffusion", str(tiny_models["diffusion"]),
            "--device", "cpu"]


def stable(rows):
    """What a rerun must reproduce (timings and batch sizes vary)."""
    return [{k: v for k, v in r.items() if k not in ("ms", "batch")} for r in rows]


def test_rows_carry_the_listed_fields_in_input_order(tiny_models, tmp_path, capsys):
    tasks = code_tasks(6, seed=1, longest=300)
    tasks[0]["suffix"] = "\nprint(1)\n"  # the cursor at a line's end: `auto` sends it to AR
    tasks[1]["suffix"] = "x)\n"  # code after the cursor: `auto` sends it to diffusion
    src = write_jsonl(tmp_path / "in.jsonl", tasks)
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(src), "-o", str(out), "--max-tokens", "8", "--batch-size", "4",
                 *models(tiny_models)]) == 0
    rows = read_jsonl(out)
    assert [r["task_id"] for r in rows] == [t["task_id"] for t in tasks]
    assert all(set(r) >= FIELDS and r["sample"] == 0 and r["forwards"] >= 1 for r in rows)
    assert {r["engine"] for r in rows} == {"speculative", "diffusion"}
    err = capsys.readouterr().err
    assert "written this run" in err and "rows/s" in err


def test_bad_rows_are_reported_with_their_line_and_skipped(tiny_models, tmp_path, capsys):
    good = code_tasks(2, longest=200)
    lines = [good[0], "{this is not json", {"task_id": "x"}, {"prompt": "a"}, [1, 2],
             {"task_id": "y", "prompt": "a", "suffix": 3}, good[0], "", good[1]]
    src = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(src), "-o", str(out), "--max-tokens", "4", "--engine", "speculative",
                 *models(tiny_models)]) == 0
    assert [r["task_id"] for r in read_jsonl(out)] == [good[0]["task_id"], good[1]["task_id"]]
    err = capsys.readouterr().err
    for line, reason in [(2, "not JSON"), (3, "'prompt'"), (4, "'task_id'"), (5, "JSON object"),
                         (6, "'suffix'"), (7, "duplicate task_id")]:
        assert f"in.jsonl:{line}: " in err and reason in err
    assert "in.jsonl:1:" not in err and "in.jsonl:9:" not in err


def test_samples_are_rows_of_their_own(tiny_models, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", code_tasks(2, longest=200))
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(src), "-o", str(out), "--samples", "3", "--temperature", "1.0",
                 "--max-tokens", "6", "--engine", "speculative", *models(tiny_models)]) == 0
    rows = read_jsonl(out)
    assert [(r["task_id"], r["sample"]) for r in rows] == [
        (t, s) for t in ("code/0", "code/1") for s in range(3)]
    # a finished run started again writes nothing
    assert main(["batch", str(src), "-o", str(out), "--samples", "3", "--temperature", "1.0",
                 "--max-tokens", "6", "--engine", "speculative", *models(tiny_models)]) == 0
    assert read_jsonl(out) == rows


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "infill.cli", *args]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


def test_a_killed_run_resumes_without_losing_or_duplicating_rows(tiny_models, tmp_path):
    tasks = code_tasks(40, seed=2, longest=300)
    src = write_jsonl(tmp_path / "in.jsonl", tasks)
    argv = ["batch", str(src), "--max-tokens", "24", "--engine", "speculative",
            "--batch-size", "1", "--quiet", *models(tiny_models)]
    clean = tmp_path / "clean.jsonl"
    assert main([*argv, "-o", str(clean)]) == 0

    out = tmp_path / "out.jsonl"
    child = subprocess.Popen(_cli(*argv, "-o", str(out)), env=_env(), cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 5:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = out.read_text().count("\n")
    assert 5 <= written < len(tasks), "the run should have been killed mid-way"
    with open(out, "a") as f:  # as if the kill had struck in the middle of a write
        f.write('{"task_id": "code/39", "sample": 0, "compl')

    assert subprocess.run(_cli(*argv, "-o", str(out)), env=_env(), cwd=REPO).returncode == 0
    assert stable(read_jsonl(out)) == stable(read_jsonl(clean))


def test_a_partial_last_line_is_dropped_and_merge_dedupes(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"task_id": "a", "sample": 0}\n{"task_id": "b", "sam')
    assert drop_partial_line(out) and out.read_text() == '{"task_id": "a", "sample": 0}\n'
    assert not drop_partial_line(out)
    (tmp_path / "out.jsonl.rank1").write_text('{"task_id": "b", "sample": 0}\n'
                                              '{"task_id": "a", "sample": 0}\n')
    assert merge(out, [("b", 0), ("a", 0)]) == 2
    assert [r["task_id"] for r in read_rows(out)[0]] == ["b", "a"]
    assert not (tmp_path / "out.jsonl.rank1").exists()


def test_two_torchrun_processes_equal_one(tiny_models, tmp_path):
    tasks = code_tasks(7, seed=4, longest=300)
    tasks[2]["suffix"] = "y]\n"
    src = write_jsonl(tmp_path / "in.jsonl", tasks)
    argv = ["batch", str(src), "--max-tokens", "10", "--batch-size", "2", "--quiet",
            *models(tiny_models)]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main([*argv, "-o", str(one)]) == 0
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc_per_node", "2", "-m", "infill.cli", *argv, "-o", str(two)]
    result = subprocess.run(launch, env=_env(), cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert stable(read_jsonl(two)) == stable(read_jsonl(one))
    assert not list(tmp_path.glob("two.jsonl.rank*"))
