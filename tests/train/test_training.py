"""A few optimizer steps on CPU lower the held-out loss of each model kind."""

import json
from pathlib import Path

import pytest

from infill.train import corpus
from infill.train.loop import TrainConfig, train
from infill.train.tokenizer import save, train_tokenizer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """This repository's own Python files: a tiny, always-present corpus."""
    files = [corpus.SourceFile("infill", str(p), p.read_text())
             for p in sorted((REPO / "infill").rglob("*.py")) if len(p.read_text()) > 500]
    folder = tmp_path_factory.mktemp("data")
    corpus.write_jsonl(files[1:], folder / "train.jsonl")
    corpus.write_jsonl(files[:1], folder / "heldout.jsonl")
    save(train_tokenizer([f.text for f in files], vocab_size=400), folder / "tokenizer")
    return folder


@pytest.mark.parametrize("kind", ["ar", "diffusion"])
def test_a_few_steps_lower_the_heldout_loss(kind, data_dir, tmp_path):
    cfg = TrainConfig(kind=kind, shape="tiny", data_dir=str(data_dir), out_dir=str(tmp_path),
                      batch_size=8, seq_len=96, lr=1e-2, warmup_steps=5, workers=0,
                      eval_every_s=1e9, max_steps=40, device="cpu", seed=0)
    state = train(cfg)
    first, last = state["log"][0], state["log"][-1]
    assert first["step"] == 0 and last["step"] == 40
    assert last["heldout_loss"] < first["heldout_loss"] - 0.5
    saved = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert saved["step"] == 40 and (tmp_path / "checkpoint" / "config.json").exists()


def test_training_resumes_from_its_checkpoint(data_dir, tmp_path):
    base = dict(kind="ar", shape="tiny", data_dir=str(data_dir), batch_size=4, seq_len=64,
                workers=0, eval_every_s=1e9, device="cpu")
    train(TrainConfig(out_dir=str(tmp_path / "a"), max_steps=5, **base))
    state = train(TrainConfig(out_dir=str(tmp_path / "b"), max_steps=5,
                              resume=str(tmp_path / "a" / "checkpoint"), **base))
    assert state["step"] == 10


def test_torchrun_trains_data_parallel_replicas(data_dir, tmp_path):
    """Two gloo processes: rank 0 logs and checkpoints, tokens count both replicas."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    out = tmp_path / "ddp"
    # its own session, so that a hang (one CI run of the seventh session; 25 runs in a row have
    # passed since) fails with the run's output and leaves no worker behind to slow later tests
    run = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", port, "-m", "infill.cli", "train", "ar", "--data", str(data_dir),
         "--out", str(out), "--shape", "tiny", "--batch-size", "4", "--seq-len", "64",
         "--workers", "0", "--max-steps", "6", "--device", "cpu", "--eval-every", "1e9"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output = run.communicate(timeout=180)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        output = run.communicate()[0].decode(errors="replace")
        pytest.fail(f"torchrun still running after 180 s; its output:\n{output[-6000:]}")
    assert run.returncode == 0, output[-6000:]
    state = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["tokens"] == 6 * 4 * 64 * 2
    assert len((out / "log.jsonl").read_text().splitlines()) == 2  # start and end, rank 0 only


def test_stop_after_ends_the_run_early_but_keeps_the_schedule(data_dir, tmp_path):
    base = dict(kind="ar", shape="tiny", data_dir=str(data_dir), batch_size=4, seq_len=64,
                workers=0, eval_every_s=1e9, device="cpu", minutes=60.0)
    state = train(TrainConfig(out_dir=str(tmp_path / "a"), stop_after=0.0, **base))
    assert state["step"] == 0  # stopped at once, checkpointed, with the 60-minute schedule
    saved = json.loads((tmp_path / "a" / "checkpoint" / "trainer_state.json").read_text())
    assert saved["config"]["minutes"] == 60.0


def test_packed_weighted_training_logs_the_loss_on_the_gaps(data_dir, tmp_path):
    cfg = TrainConfig(kind="ar", shape="tiny", data_dir=str(data_dir), out_dir=str(tmp_path),
                      batch_size=4, seq_len=96, workers=0, eval_every_s=1e9, max_steps=3,
                      device="cpu", pack=True, package_alpha=0.5, middle_weight=3.0)
    state = train(cfg)
    assert all("heldout_middle_loss" in entry for entry in state["log"])
    config = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert config["infill_context"] == 96  # a checkpoint loads like a shipped model


def test_export_replaces_only_the_named_role(data_dir, tmp_path):
    import shutil

    from infill.models.loading import DEFAULT_DIR
    from infill.train.export import export

    work = tmp_path / "work"
    train(TrainConfig(kind="ar", shape="tiny", data_dir=str(data_dir), out_dir=str(work / "target"),
                      batch_size=4, seq_len=64, workers=0, eval_every_s=1e9, max_steps=1,
                      device="cpu"))
    shipped = tmp_path / "shipped"
    shutil.copytree(DEFAULT_DIR, shipped)
    draft_before = (shipped / "draft" / "model.safetensors").read_bytes()
    table = shipped / "target" / "next_tokens.safetensors"
    result = export(work, shipped, roles=("target",))
    # the shipped next-token table is for another tokenizer than the tiny model's: removed
    assert result["next_tokens_removed"] == ["target"] and not table.exists()
    from speculative.drafters import NextTokens
    NextTokens.count([[5, 6, 7, 8]], min_count=1).save(table)  # one for the tiny tokenizer
    assert export(work, shipped, roles=("target",))["next_tokens_removed"] == []
    assert table.exists()  # the same tokenizer again: the table stays
    config = json.loads((shipped / "target" / "config.json").read_text())
    assert config["infill_context"] == 64 and config["hidden_size"] == 32
    assert (shipped / "draft" / "model.safetensors").read_bytes() == draft_before
    assert result["bytes"]["target"] < 1_000_000 and result["total_mib"] < 48


def test_export_int8_halves_the_bytes_and_still_loads(data_dir, tmp_path):
    import shutil

    from infill.models.loading import DEFAULT_DIR, load_ar
    from infill.train.export import export

    work = tmp_path / "work"
    train(TrainConfig(kind="ar", shape="tiny", data_dir=str(data_dir), out_dir=str(work / "target"),
                      batch_size=4, seq_len=64, workers=0, eval_every_s=1e9, max_steps=1,
                      device="cpu"))
    plain, small = tmp_path / "plain", tmp_path / "small"
    shutil.copytree(DEFAULT_DIR, plain)
    shutil.copytree(DEFAULT_DIR, small)
    a = export(work, plain, roles=("target",))["bytes"]["target"]
    b = export(work, small, roles=("target",), int8=True)["bytes"]["target"]
    assert b < a  # the tiny model's small matrices stay bf16; real shapes halve (test_compact)
    assert json.loads((small / "target" / "config.json").read_text())["infill_weights"] == "int8-rowwise"
    assert load_ar(str(small / "target"), device="cpu").context == 64
