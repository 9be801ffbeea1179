"""`infill bench speculative`: plain AR vs speculative decoding vs HF generate, side by side.

Requests are held-out code (single lines and random spans as editors ask). Every method decodes
the same prompt ids greedily (or with the same sampling settings) and stops on the same stop
tokens or after `max_new_tokens`, so tokens/s compare like with like.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from infill.autoregressive import build_prompt
from infill.models.loading import DEFAULT_MODELS, load_ar
from infill.train import corpus
from infill.train.heldout import line_tasks
from speculative.decode import Decoder
from speculative.drafters import CombinedDrafter, ModelDrafter, NgramDrafter


@dataclass
class Prompt:
    ids: list[int]
    kind: str


def bench_prompts(ar, count: int, max_new: int, seed: int = 0) -> list[Prompt]:
    """Half single-line gaps, half random spans of 1-6 lines, from held-out files."""
    files = corpus.collect(packages=corpus.HELD_OUT_PACKAGES)
    if not files:
        raise SystemExit("no held-out files found on this machine (see MODELS.md for the split)")
    rng = random.Random(seed)
    prompts = [Prompt(build_prompt(ar, t.prefix, t.suffix, max_new), "line")
               for t in line_tasks(files, count // 2, seed)]
    while len(prompts) < count:
        text = rng.choice(files).text
        lines = text.split("\n")
        first = rng.randrange(1, max(2, len(lines) - 7))
        last = min(len(lines), first + rng.randint(1, 6))
        prefix = "\n".join(lines[:first]) + "\n"
        suffix = "\n" + "\n".join(lines[last:])
        prompts.append(Prompt(build_prompt(ar, prefix, suffix, max_new), "span"))
    return prompts


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_ours(ar, prompts, drafter, max_new: int) -> list[dict]:
    rows = []
    for p in prompts:
        decoder = Decoder(ar.model)  # a fresh cache: no reuse across unrelated prompts
        _sync(ar.device)
        start = time.perf_counter()
        r = decoder.generate(p.ids, max_new_tokens=max_new, stop_ids=ar.stop_ids, drafter=drafter)
        _sync(ar.device)
        rows.append({"ms": (time.perf_counter() - start) * 1000, "tokens": r.tokens,
                     "forwards": r.forwards, "drafted": r.drafted, "accepted": r.accepted})
    return rows


def run_hf(ar, prompts, max_new: int, **generate_kwargs) -> list[dict]:
    rows = []
    eos = sorted(ar.stop_ids)
    for p in prompts:
        inputs = torch.tensor([p.ids], device=ar.device)
        _sync(ar.device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = ar.model.generate(inputs, attention_mask=torch.ones_like(inputs),
                                    max_new_tokens=max_new, do_sample=False, eos_token_id=eos,
                                    pad_token_id=eos[0], **generate_kwargs)
        _sync(ar.device)
        tokens = [t for t in out[0, len(p.ids):].tolist()]
        if tokens and tokens[-1] in ar.stop_ids:
            tokens = tokens[:-1]
        rows.append({"ms": (time.perf_counter() - start) * 1000, "tokens": tokens,
                     "forwards": None, "drafted": 0, "accepted": 0})
    return rows


def summarize(name: str, rows: list[dict], reference: list[dict]) -> dict:
    total_tokens = sum(len(r["tokens"]) for r in rows)
    total_s = sum(r["ms"] for r in rows) / 1000
    forwards = [r["forwards"] for r in rows if r["forwards"]]
    drafted = sum(r["drafted"] for r in rows)
    return {
        "method": name,
        "median_ms": statistics.median(r["ms"] for r in rows),
        "tokens_per_s": total_tokens / total_s if total_s else 0.0,
        "tokens_per_forward": (total_tokens / sum(forwards)) if forwards else None,
        "acceptance": (sum(r["accepted"] for r in rows) / drafted) if drafted else None,
        "greedy_equal": sum(r["tokens"] == ref["tokens"] for r, ref in zip(rows, reference)) / len(rows),
    }


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    target = load_ar(args.target or DEFAULT_MODELS["target"], args.device)
    draft = load_ar(args.draft or DEFAULT_MODELS["draft"], args.device)
    prompts = bench_prompts(target, args.requests, args.max_new_tokens)
    warm = prompts[:3]
    run_ours(target, warm, None, 4)  # warm-up: allocator, kernels
    methods = {
        "plain AR (ours)": lambda: run_ours(target, prompts, None, args.max_new_tokens),
        "speculative n-gram": lambda: run_ours(target, prompts, NgramDrafter(), args.max_new_tokens),
        "speculative draft model": lambda: run_ours(target, prompts, ModelDrafter(draft.model, 0.3),
                                                    args.max_new_tokens),
        "speculative combined": lambda: run_ours(
            target, prompts, CombinedDrafter(NgramDrafter(), ModelDrafter(draft.model, 0.3)),
            args.max_new_tokens),
        "HF generate": lambda: run_hf(target, prompts, args.max_new_tokens),
        "HF assisted (draft model)": lambda: run_hf(target, prompts, args.max_new_tokens,
                                                    assistant_model=draft.model),
        "HF prompt lookup": lambda: run_hf(target, prompts, args.max_new_tokens,
                                           prompt_lookup_num_tokens=10),
    }
    results, reference = [], None
    for name, method in methods.items():
        rows = method()
        reference = reference or rows
        results.append(summarize(name, rows, reference))
    table = Table(title=f"speculative decoding: {len(prompts)} held-out requests, greedy, "
                        f"max {args.max_new_tokens} new tokens, {target.device}")
    for column in ("method", "median ms", "tokens/s", "tokens/forward", "acceptance",
                   "greedy = plain AR"):
        table.add_column(column)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    for r in results:
        table.add_row(r["method"], fmt(r["median_ms"], ".1f"), fmt(r["tokens_per_s"], ".0f"),
                      fmt(r["tokens_per_forward"], ".2f"), fmt(r["acceptance"], ".2f"),
                      f"{100 * r['greedy_equal']:.0f}%")
    Console(width=150).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": str(target.device), "requests": len(prompts),
            "max_new_tokens": args.max_new_tokens, "results": results}, indent=2))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("speculative", help="plain AR vs speculative decoding vs HF generate")
    p.add_argument("--device")
    p.add_argument("--target")
    p.add_argument("--draft")
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--json")
    p.set_defaults(run=run)
