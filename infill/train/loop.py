"""One training loop for the three model kinds, budgeted in minutes and resumable.

The learning-rate schedule follows elapsed training time rather than a step count, so a run
split over several sessions of at most ten minutes (resumed from its last checkpoint) traces the
same schedule as one uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PreTrainedTokenizerFast

from infill.train import architectures
from infill.train.corpus import read_jsonl
from infill.train.data import IGNORE, BatchStream, SpecialIds, cosine_lr, fixed_batches


@dataclass
class TrainConfig:
    kind: str  # "ar" or "diffusion"
    shape: str  # a key of architectures.AR_SHAPES or DIFFUSION_SHAPES
    data_dir: str
    out_dir: str
    minutes: float = 10.0
    batch_size: int = 64
    seq_len: int = 1024
    lr: float = 2e-3
    warmup_steps: int = 300
    weight_decay: float = 0.1
    fim_rate: float = 0.9
    package_alpha: float = 1.0  # see data.DocSampler: < 1 flattens the share of big packages
    pack: bool = False  # several short examples per row (data.PACKING)
    middle_weight: float = 1.0  # loss weight of the middle tokens of FIM rows
    surplus: str = "uniform"  # diffusion: pads after a gap's middle (data.surplus_pads)
    rename_rate: float = 0.0  # AR: share of examples with their own names renamed (augment.py)
    workers: int = 4
    seed: int = 0
    eval_every_s: float = 60.0
    resume: str | None = None
    device: str | None = None
    compile: bool = False
    max_steps: int | None = None  # for tests: stop after this many steps
    # stop this run after so many minutes, checkpointed, while the learning-rate schedule
    # keeps following `minutes`: a long schedule split over machine sessions of ten minutes
    stop_after: float | None = None


def _device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def init_distributed(cfg: "TrainConfig") -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun each process trains one data-parallel
    replica (NCCL on GPUs, gloo on the CPU); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, _device(cfg.device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, device


def agree(flags: list[bool], world: int, device: torch.device) -> list[bool]:
    """Rank 0's decisions (stop, evaluate) for every rank: time-based decisions taken apart
    would leave ranks waiting on each other's gradients forever."""
    if world == 1:
        return flags
    tensor = torch.tensor(flags, dtype=torch.int32, device=device)
    torch.distributed.broadcast(tensor, 0)
    return [bool(v) for v in tensor.tolist()]


def build_model(cfg: TrainConfig, tokenizer, ids: SpecialIds):
    if cfg.resume:
        loader = AutoModelForMaskedLM if cfg.kind == "diffusion" else AutoModelForCausalLM
        return loader.from_pretrained(cfg.resume, dtype=torch.float32)
    make = architectures.diffusion_model if cfg.kind == "diffusion" else architectures.ar_model
    return make(cfg.shape, len(tokenizer), ids, max_positions=max(4096, cfg.seq_len))


def token_losses(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"]).logits.float()
    return F.cross_entropy(logits.transpose(1, 2), batch["labels"], ignore_index=IGNORE,
                           reduction="none")


def batch_loss(model, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    per_token = token_losses(model, batch)
    if kind == "diffusion":
        return (per_token.sum(1) * batch["weights"]).mean()
    weights = (batch["labels"] != IGNORE).float()
    if "loss_weights" in batch:
        weights = weights * batch["loss_weights"]
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)


@torch.no_grad()
def heldout_loss(model, batches, kind: str, device: torch.device) -> dict[str, float]:
    """{"heldout_loss": ...} and, for AR, "heldout_middle_loss": the loss on the gaps alone."""
    model.eval()
    total, middle = [], []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if kind == "diffusion":
                total.append(batch_loss(model, batch, kind).item())
                continue
            per_token = token_losses(model, batch)
        counted = batch["labels"] != IGNORE
        total.append((per_token[counted].mean()).item())
        gap = counted & (batch["loss_weights"] > 1)
        if gap.any():
            middle.append(per_token[gap].mean().item())
    model.train()
    result = {"heldout_loss": round(sum(total) / len(total), 4)}
    if middle:
        result["heldout_middle_loss"] = round(sum(middle) / len(middle), 4)
    return result


def _state_path(directory: str | Path) -> Path:
    return Path(directory) / "trainer_state.json"


def save_checkpoint(model, tokenizer, out: Path, state: dict) -> None:
    """bf16 safetensors in shards small enough to come back from the GPU machine (16 MiB)."""
    out.mkdir(parents=True, exist_ok=True)
    # A bf16 copy of the weights: casting the live model would swap its parameters' storage
    # under the optimizer and DistributedDataParallel.
    weights = {k: v.detach().to(torch.bfloat16) for k, v in model.state_dict().items()}
    # the context it was trained on, which the engines respect (a checkpoint loads like a
    # shipped model)
    model.config.infill_context = state.get("config", {}).get("seq_len")
    model.save_pretrained(str(out), state_dict=weights, max_shard_size="15MB")
    tokenizer.save_pretrained(str(out))
    _state_path(out).write_text(json.dumps(state, indent=1))


def train(cfg: TrainConfig) -> dict:
    # The parent tokenizes the held-out batches before the DataLoader forks its workers; a Rust
    # thread pool inherited across fork deadlocks the workers (seen on the GPU machine).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    rank, world, device = init_distributed(cfg)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    data_dir, out_dir = Path(cfg.data_dir), Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(data_dir / "tokenizer"))
    ids = SpecialIds.of(tokenizer)
    train_files = read_jsonl(data_dir / "train.jsonl")
    train_texts, train_packages = [f.text for f in train_files], [f.package for f in train_files]
    heldout_texts = [f.text for f in read_jsonl(data_dir / "heldout.jsonl")]

    state = {"elapsed_s": 0.0, "step": 0, "tokens": 0, "log": []}
    if cfg.resume and _state_path(cfg.resume).exists():
        state = json.loads(_state_path(cfg.resume).read_text())
    model = build_model(cfg, tokenizer, ids).to(device)
    model.train()
    replica = model
    if world > 1:
        replica = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = torch.compile(replica) if cfg.compile else replica
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                                  weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    stream = BatchStream(cfg.kind, train_texts, tokenizer, cfg.batch_size, cfg.seq_len,
                         seed=cfg.seed + 7919 * state["step"] + 104729 * rank,
                         fim_rate=cfg.fim_rate, packages=train_packages,
                         package_alpha=cfg.package_alpha, pack=cfg.pack,
                         middle_weight=cfg.middle_weight, surplus=cfg.surplus,
                         rename_rate=cfg.rename_rate)
    loader = DataLoader(stream, batch_size=None, num_workers=cfg.workers, pin_memory=True,
                        prefetch_factor=8 if cfg.workers else None,
                        persistent_workers=bool(cfg.workers))
    eval_batches = fixed_batches(cfg.kind, heldout_texts, tokenizer, min(cfg.batch_size, 32),
                                 cfg.seq_len, count=8) if rank == 0 else []
    log_file = (out_dir / "log.jsonl").open("a") if rank == 0 else None
    budget_s = cfg.minutes * 60.0
    start = time.time() - state["elapsed_s"]
    run_start = time.time()
    # -inf: evaluate before the first step too, so every curve starts at the untrained loss.
    last_eval, window_tokens, window_start, step_in_run = float("-inf"), 0, time.time(), 0
    train_loss = float("nan")

    for batch in loader:
        elapsed = time.time() - start
        done, evaluate = agree([
            elapsed >= budget_s or (cfg.max_steps is not None and step_in_run >= cfg.max_steps)
            or (cfg.stop_after is not None and time.time() - run_start >= cfg.stop_after * 60),
            time.time() - last_eval >= cfg.eval_every_s], world, device)
        if (done or evaluate) and rank == 0:
            entry = {
                "step": state["step"], "tokens": state["tokens"], "elapsed_s": round(elapsed, 1),
                "train_loss": None if train_loss != train_loss else round(train_loss, 4),
                **heldout_loss(model, eval_batches, cfg.kind, device),
                "tokens_per_s": round(window_tokens / max(time.time() - window_start, 1e-9)),
                "lr": optimizer.param_groups[0]["lr"],
            }
            state["log"].append(entry)
            state["elapsed_s"] = elapsed
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()
            print(json.dumps({"kind": cfg.kind, "shape": cfg.shape, **entry}), flush=True)
            save_checkpoint(model, tokenizer, out_dir / "checkpoint", {**state, "config": asdict(cfg)})
        if done or evaluate:
            last_eval, window_tokens, window_start = time.time(), 0, time.time()
        if done:
            break
        lr = cosine_lr(elapsed / budget_s, step_in_run, cfg.lr, cfg.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = batch_loss(step_fn, batch, cfg.kind)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] += 1
        step_in_run += 1
        tokens = batch["input_ids"].numel() * world
        state["tokens"] += tokens
        window_tokens += tokens
        if state["step"] % 20 == 0:
            train_loss = loss.item()  # one host sync every 20 steps, not every step
    if log_file:
        log_file.close()
    if world > 1:
        # rank 0 may still be saving: leave together, or a rank can wait forever on a peer
        # that already exited
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return state
