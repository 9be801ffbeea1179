"""Where a completion request's time goes on a GPU: the prefill, the decoding rounds, and the
host's work between them, for plain AR and n-gram speculation over the speculative bench's
held-out requests (the same prompts as `infill bench speculative`).

  python scripts/profile_requests.py [--requests 40] [--json FILE]

Each cache call is timed between two device synchronisations, so the figures add the GPU's and
the host's time of that call; "between calls" is the rest of the request (the drafter, the
acceptance rule, the stop checks). Then the device time of one prefill chunk (graph replays
back to back) and the kernels of one eager prefill, which tell the prefill's launch-bound part
from its arithmetic."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infill.bench.speculative import _sync as sync, bench_prompts  # noqa: E402
from speculative.decode import Decoder  # noqa: E402
from speculative.drafters import NgramDrafter  # noqa: E402
from speculative.static import StaticKV, StaticModel, engine_for  # noqa: E402


class TimedKV:
    """A cache whose prefill and feed calls are timed, each between two synchronisations."""

    def __init__(self, kv, device):
        self.kv, self.device = kv, device
        self.prefill_ms, self.feed_ms = 0.0, []

    def _timed(self, call, *args, **kwargs):
        sync(self.device)
        start = time.perf_counter()
        out = call(*args, **kwargs)
        sync(self.device)
        return out, (time.perf_counter() - start) * 1000

    def prefill(self, prompt):
        out, self.prefill_ms = self._timed(self.kv.prefill, prompt)
        return out

    def feed(self, ids, rows="all"):
        out, ms = self._timed(self.kv.feed, ids, rows)
        self.feed_ms.append(ms)
        return out

    @property
    def tree_tokens(self):
        return self.kv.tree_tokens

    def feed_argmax(self, ids, tree=None):
        out, ms = self._timed(self.kv.feed_argmax, ids, tree)
        self.feed_ms.append(ms)
        return out

    def rollback(self, length):
        self.kv.rollback(length)


def phases(ar, prompts, drafter, max_new: int) -> dict:
    rows = []
    for p in prompts:
        kv = TimedKV(StaticKV(engine_for(ar.model)), ar.device)
        decoder = Decoder(ar.model, kv=kv)
        decoder.wide_verify = kv.kv.engine.static_shapes  # as for the cache it wraps
        sync(ar.device)
        start = time.perf_counter()
        r = decoder.generate(p.ids, max_new_tokens=max_new, stop_ids=ar.stop_ids,
                             drafter=drafter)
        total = (time.perf_counter() - start) * 1000
        rows.append({"total": total, "prefill": kv.prefill_ms, "rounds": len(kv.feed_ms),
                     "round": statistics.median(kv.feed_ms) if kv.feed_ms else 0.0,
                     "between": total - kv.prefill_ms - sum(kv.feed_ms), "tokens": len(r.tokens),
                     "prompt": len(p.ids)})
    keys = ("total", "prefill", "rounds", "round", "between", "tokens", "prompt")
    return {k: statistics.median(r[k] for r in rows) for k in keys}


@torch.inference_mode()
def chunk_replay_ms(engine: StaticModel, reps: int = 20) -> dict:
    """Device ms of one replay of each prefill chunk graph (the causal one of a prompt's first
    chunk, and the masked one of later chunks), queued back to back."""
    out = {}
    for (bucket, _), step in sorted(engine.steps.items()):
        if step.logits or step.graph is None:
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        step._park()
        start.record()
        for _ in range(reps):
            step._replay()
        end.record()
        end.synchronize()
        out[f"{bucket}, causal" if step.causal else f"{bucket}, masked"] = \
            start.elapsed_time(end) / reps
    return out


def prefill_kernels(ar, prompt: list[int]) -> tuple[list[dict], int]:
    from torch.profiler import ProfilerActivity, profile

    kv = StaticKV(StaticModel(ar.model, graphs=False, static_shapes=True))
    with torch.inference_mode():
        kv.prefill(prompt)
        kv.reset()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            kv.prefill(prompt)
            torch.cuda.synchronize(ar.device)
    rows = [{"kernel": e.key[:80], "calls": e.count,
             "us": getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)}
            for e in prof.key_averages() if e.count]
    rows = [r for r in rows if r["us"]]
    rows.sort(key=lambda r: -r["us"])
    return rows, sum(r["calls"] for r in rows)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--json")
    args = p.parse_args()
    from infill.models.loading import DEFAULT_MODELS, load_ar

    ar = load_ar(DEFAULT_MODELS["target"], "cuda", "bfloat16")
    prompts = bench_prompts(ar, args.requests, args.max_new_tokens)
    report = {}

    def part(key, value) -> None:  # printed and saved as it comes: a failure keeps the rest
        report[key] = value
        print(key, json.dumps(value, indent=1), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))

    for name, drafter in (("plain AR", None),
                          ("n-gram", NgramDrafter(next_tokens=ar.next_tokens)),
                          ("n-gram, one row", NgramDrafter(trees=False))):
        phases(ar, prompts[:3], drafter, 8)  # warm-up: captures
        part(name, phases(ar, prompts, drafter, args.max_new_tokens))
    part("prefill chunk replay ms", chunk_replay_ms(engine_for(ar.model)))
    kernels, launches = prefill_kernels(ar, prompts[0].ids)
    part("eager prefill: kernels launched", launches)
    part("eager prefill: device us", sum(r["us"] for r in kernels))
    part("eager prefill: top kernels", kernels[:25])
    return 0


if __name__ == "__main__":
    sys.exit(main())
