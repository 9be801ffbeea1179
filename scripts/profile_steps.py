"""Where a decode step's time goes on a GPU: the kernels of one step (torch.profiler over the
eager static forward, which launches the same kernels a CUDA graph replays), their device time
against the step's wall time with and without the host's per-step work.

  python scripts/profile_steps.py [--shapes 1.5b] [--shipped] [--compile] [--json FILE]

Per model: ms per step of (a) graph replays back to back, no host sync (device time), (b) the
decoding loop's step (feed + argmax read on the host each step, as `Decoder` does), and the top
kernels of one eager step by device time, with their count per step."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infill.bench.speculative import build_shape, time_cache  # noqa: E402
from speculative.static import StaticKV, StaticModel  # noqa: E402


def replay_ms(kv: StaticKV, context: list[int], steps: int = 50) -> float:
    """Device ms per decode step: graph replays queued back to back, one sync at the end."""
    with torch.inference_mode():
        kv.prefill(context)
        kv.feed([7])
        step = kv.engine.steps[kv.engine._step_key(1, len(context) + 1)]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step._replay()
        end.record()
        end.synchronize()
        kv.rollback(len(context))
    return start.elapsed_time(end) / steps


def kernel_table(model, context: list[int], steps: int = 5, **options) -> tuple[list[dict], float]:
    """Kernels of `steps` eager decode steps: per kernel name, calls and device us per step."""
    from torch.profiler import ProfilerActivity, profile

    cuda = next(model.parameters()).device.type == "cuda"
    kv = StaticKV(StaticModel(model, graphs=False, static_shapes=True, buckets=(1, 8, 64),
                              **options))
    with torch.inference_mode():
        kv.prefill(context)
        for _ in range(3):
            int(kv.feed([7])[-1].argmax())
        with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                int(kv.feed([7])[-1].argmax())
    rows = []
    for event in prof.key_averages():
        us = (getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
              if cuda else event.self_cpu_time_total)
        if us and event.count:
            rows.append({"kernel": event.key[:90], "calls_per_step": event.count / steps,
                         "us_per_step": us / steps})
    rows.sort(key=lambda r: -r["us_per_step"])
    return rows, sum(r["us_per_step"] for r in rows)


def profile_model(name: str, model, vocab: int, context_len: int,
                  compile_steps: bool = False) -> dict:
    rng = random.Random(0)
    context = [rng.randrange(vocab) for _ in range(context_len)]
    device = next(model.parameters()).device
    out = {"model": name}
    variants = {  # label: StaticModel options
        "sdpa": dict(kernels=False, matmul_attention_tokens=0),
        "matmul attention": dict(kernels=False),
        "Triton kernels (default)": {},
        "Triton kernels, stacked MLP": dict(stack_mlp=True),
    }
    if compile_steps:
        variants["matmul attention, compiled"] = dict(kernels=False, compile_steps=True)
    for label, options in variants.items() if device.type == "cuda" else ():
        try:
            kv = StaticKV(StaticModel(model, graphs=True, buckets=(1, 8, 64), **options))
            out[f"graph replay ms, {label}"] = replay_ms(kv, context)
            out[f"decoding step ms, {label}"] = time_cache(kv, context, 1, 10, 10, device)
        except Exception as exc:  # one variant failing keeps the others
            out[f"error, {label}"] = f"{type(exc).__name__}: {exc}"[:300]
        kv = None
    _, total = kernel_table(model, context, kernels=False)
    out["eager kernels us per step, torch forward"] = total
    rows, total = kernel_table(model, context)
    out["eager kernels us per step"] = total
    out["kernels"] = rows[:30]
    print(f"== {name}")
    for key, value in out.items():
        if isinstance(value, (float, str)):
            print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    print(f"  {'kernel':90s} {'calls':>6s} {'us/step':>9s}")
    for r in rows[:30]:
        print(f"  {r['kernel']:90s} {r['calls_per_step']:6.0f} {r['us_per_step']:9.1f}")
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="1.5b")
    p.add_argument("--shipped", action="store_true", help="also the shipped AR target")
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--device", default="cuda")
    p.add_argument("--compile", action="store_true",
                   help="also the steps compiled by torch.compile before their capture")
    p.add_argument("--json")
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    report = []
    for shape in [s for s in args.shapes.split(",") if s]:
        model = build_shape(shape, device, dtype)
        report.append(profile_model(shape, model, model.config.vocab_size, args.context,
                                    args.compile))
        del model
    if args.shipped:
        from infill.models.loading import DEFAULT_MODELS, load_ar

        ar = load_ar(DEFAULT_MODELS["target"], str(device), str(dtype).split(".")[1])
        report.append(profile_model("shipped target", ar.model, ar.model.config.vocab_size,
                                    args.context, args.compile))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
