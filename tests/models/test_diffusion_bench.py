"""`infill bench diffusion` end to end on the shipped diffusion model (CPU): held-out lines and
SAFIM-shaped rows (written here, in SAFIM's format) side by side in every setting."""

import gzip
import json
from dataclasses import replace

import pytest

from infill import autoregressive
from infill.bench.diffusion import SETTINGS
from infill.cli import main
from infill.diffusion import engine
from infill.models.loading import DEFAULT_MODELS, load_ar, load_diffusion
from infill.request import InfillRequest

pytestmark = pytest.mark.skipif(not (DEFAULT_MODELS["diffusion"] / "config.json").exists(),
                                reason="needs the shipped diffusion model")

ROWS = {
    "block": {"eval_prompt": "n = int(input())\nif n > 0:\n    {{completion}}\n",
              "ground_truth": "print(n)", "unit_tests": [{"input": "3\n", "output": ["3"]}]},
    "control": {"eval_prompt": "n = int(input())\nif {{completion}}:\n    print(n)\n",
                "ground_truth": "n > 0", "unit_tests": [{"input": "3\n", "output": ["3"]}]},
    "api": {"eval_prompt": "import math\nx = {{completion}}\nprint(x)\n",
            "ground_truth": "math.sqrt(4)", "unit_tests": []},
}


def test_bench_diffusion_reports_every_setting_on_heldout_and_safim(tmp_path, capsys):
    for kind, row in ROWS.items():
        with gzip.open(tmp_path / f"{kind}_completion.jsonl.gz", "wt") as f:
            f.write(json.dumps({"lang": "python", "task_id": f"t-{kind}", **row}) + "\n")
    out = tmp_path / "diffusion.json"
    assert main(["bench", "diffusion", "--device", "cpu", "--tasks", "2", "--safim",
                 str(tmp_path), "--safim-rows", "1", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"held-out lines", "SAFIM block", "SAFIM control", "SAFIM api"}
    for set_name, by_setting in results.items():
        assert len(by_setting) == len(SETTINGS)
        for r in by_setting.values():
            assert r["tasks"] == (2 if set_name == "held-out lines" else 1)
            assert r["forwards"] >= 1 and 0 <= r["exact_match"] <= 1
            assert 0 <= r["edit_similarity"] <= 1
            # SAFIM rows are run (block, control) or syntax-matched (api): a pass@1 each
            assert (r["pass_at_1"] is None) == (set_name == "held-out lines")
    assert "Codeforces" in capsys.readouterr().out


def test_bench_diffusion_runs_the_chosen_settings_beside_the_reference(tmp_path):
    out = tmp_path / "diffusion.json"
    assert main(["bench", "diffusion", "--device", "cpu", "--tasks", "2",
                 "--settings", "no remasking", "--json", str(out)]) == 0
    by_setting = json.loads(out.read_text())["results"]["held-out lines"]
    assert list(by_setting) == [
        "reference (1 token/forward, true length)",
        "true length, 6 tokens/forward, no remasking",
        "true length, 8 tokens/forward, no remasking",
        "true length, 16 tokens/forward, first forward spaced, no remasking",
        "AR length, 16 tokens/forward, first forward spaced, no remasking"]
    reference = by_setting["reference (1 token/forward, true length)"]
    for name in ("true length, 8 tokens/forward, no remasking",
                 "true length, 16 tokens/forward, first forward spaced, no remasking"):
        assert by_setting[name]["forwards"] <= reference["forwards"]


def test_ar_length_prior_is_the_ar_completions_length_within_the_fixed_gap():
    ar = load_ar(DEFAULT_MODELS["target"], "cpu")
    dm = load_diffusion(DEFAULT_MODELS["diffusion"], "cpu")
    request = InfillRequest(prefix="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n",
                            engine="diffusion", max_tokens=24)
    text, _ = autoregressive.generate(ar, request, False)
    tokens = len(engine.encode(dm, text))
    assert tokens >= 2
    assert engine.ar_gap(ar, dm, request, False) == tokens
    assert engine.ar_gap(ar, dm, replace(request, max_tokens=2), False) == 2
    settings = engine.DiffusionSettings(collapse=False)
    filled, kept, forwards = engine.generate(dm, request, False, settings, gap=tokens)
    assert kept == tokens and forwards >= 1 and "<|" not in filled


def test_a_gap_of_no_tokens_completes_nothing_without_a_forward():
    dm = load_diffusion(DEFAULT_MODELS["diffusion"], "cpu")
    request = InfillRequest(prefix="x = 1\n", suffix="\n", engine="diffusion")
    assert engine.generate_candidates(dm, request, False, gap=0, rows=2) == (["", ""], [0, 0], 0)
