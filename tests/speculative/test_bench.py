"""`infill bench speculative` runs on a CPU end to end (the GPU run is the same code with CUDA
graphs in place of their emulation), records a failing method instead of stopping, and writes
its JSON as it goes."""

import argparse
import json
import os

import pytest
import torch

from infill.bench import speculative as bench


@pytest.fixture(autouse=True)
def one_thread():
    """Two OpenMP threads on two cores that other jobs share stall for milliseconds per op:
    these tests time nothing, so one thread keeps them quick under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def args_for(tmp_path, **overrides):
    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    args = parser.parse_args(["speculative", "--device", "cpu", "--json",
                              str(tmp_path / "out.json")])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_step_benchmark_on_the_tiny_shape_records_failures_and_goes_on(tmp_path, monkeypatch):
    real = bench.StaticModel

    def broken_graphs(model, **options):
        if options.get("graphs") == "emulate":
            raise RuntimeError("capture [failed]")
        return real(model, **options)

    monkeypatch.setattr(bench, "StaticModel", broken_graphs)
    args = args_for(tmp_path, shapes="tiny,nonesuch", no_completions=True, reps=1, block=2,
                    context=24)
    assert bench.run(args) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    tiny, unknown = report["steps"]["shapes"]
    assert "unknown shape" in unknown["error"]
    assert tiny["floor_ms"] > 0
    methods = tiny["methods"]
    for name in ("HF eager (DynamicCache)", "static eager"):
        assert methods[name]["decode_ms"] > 0 and methods[name]["verify8_ms"] > 0
    assert "capture [failed]" in methods["static + emulated graphs"]["error"]


def test_completion_benchmark_compares_methods_on_the_shipped_models(tmp_path, monkeypatch):
    from infill.autoregressive import build_prompt

    def prompts(ar, count, max_new, seed=0):
        code = ("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n", "\n\n\ndef mul(a, b):\n"
                "    return a * b\n")
        return [bench.Prompt(build_prompt(ar, *code, max_new), "span")] * count

    monkeypatch.setattr(bench, "bench_prompts", prompts)
    monkeypatch.setattr(bench, "ModelDrafter", None)  # "draft model" fails: calling None
    args = args_for(tmp_path, requests=2, max_new_tokens=6,
                    methods="ar,ngram,draft,hf", passes=2)
    assert bench.run(args) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    results = {r["method"]: r for r in report["results"]}
    assert list(results) == ["plain AR (ours)", "speculative n-gram", "speculative draft model",
                             "HF generate"]
    assert report["passes"] == 2
    assert "error" in results["speculative draft model"]
    for name in ("plain AR (ours)", "speculative n-gram", "HF generate"):
        r = results[name]
        assert r["greedy_equal"] == pytest.approx(1.0)
        assert r["tokens_per_s"] > 0 and r["median_ms"] > 0
    assert results["plain AR (ours)"]["vs_plain_ar"] == pytest.approx(1.0)
    assert report["target_cache"].startswith("static")


def test_methods_without_a_draft_model_do_not_load_one(tmp_path, monkeypatch):
    from infill.autoregressive import build_prompt

    def prompts(ar, count, max_new, seed=0):
        return [bench.Prompt(build_prompt(ar, "def f(x):\n    return ", "\n", max_new), "line")]

    monkeypatch.setattr(bench, "bench_prompts", prompts)
    args = args_for(tmp_path, requests=1, max_new_tokens=2, methods="ar,ngram",
                    draft=str(tmp_path / "no-such-draft"))
    assert bench.run(args) == 0
    report = json.loads((tmp_path / "out.json").read_text())
    assert [r["method"] for r in report["results"]] == ["plain AR (ours)", "speculative n-gram"]
    assert all("error" not in r for r in report["results"]) and "draft_cache" not in report


def test_the_benchmark_runs_without_tree_sitter_pygls_rapidfuzz_and_rich(tmp_path):
    """The GPU machine has torch and transformers only: the benchmark's whole path, held-out
    prompt building included, must not need the editor-side packages."""
    import subprocess
    import sys

    script = f"""
import sys
for name in ("tree_sitter", "pygls", "lsprotocol", "rapidfuzz", "rich"):
    sys.modules[name] = None  # as if not installed
import infill.train.corpus, infill.train.heldout  # what bench_prompts reads the files with
from infill.autoregressive import build_prompt
from infill.bench import speculative as bench

def prompts(ar, count, max_new, seed=0):
    ids = build_prompt(ar, "def f(x):\\n    return ", "\\n", max_new)
    return [bench.Prompt(ids, "line")] * count

bench.bench_prompts = prompts
bench.main(["--device", "cpu", "--requests", "1", "--max-new-tokens", "2", "--methods",
            "ar,ngram", "--shapes", "tiny", "--reps", "1", "--block", "1", "--context", "8",
            "--json", {str(tmp_path / "out.json")!r}])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    assert [r["method"] for r in report["results"]] == ["plain AR (ours)", "speculative n-gram"]
    assert all("error" not in r for r in report["results"])
    assert report["steps"]["shapes"][0]["methods"]["static eager"]["decode_ms"] > 0


def test_a_requests_time_over_passes_is_its_median():
    passes = [[{"ms": ms, "tokens": [1, 2]}, {"ms": 10 * ms, "tokens": [3]}] for ms in (3, 1, 2)]
    rows = bench._median_rows(passes)
    assert [r["ms"] for r in rows] == [2, 20]
    assert [r["tokens"] for r in rows] == [[1, 2], [3]]


@pytest.mark.parametrize("passes", ["0", "-2", "two"])
def test_passes_below_one_are_refused(passes, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--passes", passes])
    assert "at least 1" in capsys.readouterr().err
