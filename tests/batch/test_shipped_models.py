"""End to end on the shipped models (CPU): SAFIM rows through `infill batch` with each engine,
then `infill eval`. Data: SAFIM (Gong et al. 2024), CC-BY-4.0; problems from Codeforces."""

import json
from pathlib import Path

import pytest

from infill.cli import main
from infill.models.loading import DEFAULT_MODELS

from batch_cases import read_jsonl

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "safim"
pytestmark = pytest.mark.skipif(
    not all((p / "config.json").exists() for p in DEFAULT_MODELS.values()) or not DATA.is_dir(),
    reason="needs the shipped models and ../shared/data/safim")


def test_batch_then_eval_on_safim_with_both_engines(tmp_path, capsys):
    safim = tmp_path / "safim"
    safim.mkdir()
    (safim / "control_completion.jsonl.gz").symlink_to(DATA / "control_completion.jsonl.gz")
    out = tmp_path / "out.jsonl"
    for engine in ("speculative", "diffusion"):
        assert main(["batch", str(safim), "-o", str(out.with_suffix(f".{engine}.jsonl")),
                     "--limit", "3", "--engine", engine, "--max-tokens", "24", "--device", "cpu",
                     "--batch-size", "3"]) == 0
    rows = [r for engine in ("speculative", "diffusion")
            for r in read_jsonl(out.with_suffix(f".{engine}.jsonl"))]
    assert [r["engine"] for r in rows] == ["speculative"] * 3 + ["diffusion"] * 3
    assert all(r["model"].startswith("infill-default/") and r["forwards"] >= 1 for r in rows)
    assert all("\n" not in r["completion"] for r in rows)  # control rows: one line
    for r in rows[3:]:
        r["sample"] = 1  # one file, two samples per task: one from each engine
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report.json"
    assert main(["eval", str(out), "--problems", str(safim), "--json", str(report),
                 "--workers", "2"]) == 0
    groups = json.loads(report.read_text())["groups"]
    assert groups["all"]["tasks"] == 3 and groups["all"]["samples"] == 6
    assert set(groups) >= {"all", "safim-control", "engine speculative", "engine diffusion"}
    assert "pass@1" in groups["all"]
    assert "Codeforces" in capsys.readouterr().out
