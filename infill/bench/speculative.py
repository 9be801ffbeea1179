"""`infill bench speculative`: plain AR vs speculative decoding vs HF generate, side by side;
with `--shapes`, the time of one decode and one verify step at real model shapes.

Completions: requests are held-out code (single lines and random spans as editors ask). Every
method decodes the same prompt ids greedily and stops on the same stop tokens or after
`max_new_tokens`, so tokens/s compare like with like. With `--passes N` the methods take turns
over the requests N times and a request's time is its median over the passes: the methods
side by side, less of a GPU's drift between runs in any one of them. Acceptance is the drafts
accepted over the drafts verified: for a tree of drafts (greedy n-gram speculation on a GPU)
every node counts, so it is low by construction; tokens/forward is the measure to compare.
`ngram-row` (one row of drafts a round, no tree) and `ngram-python` (the drafter's rules in
Python, not in its C module) are the shipped n-gram drafter less one of its speed-ups.

Steps (`--shapes tiny,1.5b,7b`): randomly initialised Qwen2 models of Qwen2.5-Coder-1.5B and
-7B shapes, built directly on the device, time one decode step (1 token) and one verify step
(8 tokens) after a `--context`-token prompt, each ending with the argmax on the host as decoding
does: HF's forward with a DynamicCache, the static path eagerly, the static path with CUDA
graphs, against the memory-bandwidth floor (weight bytes / `--bandwidth`).

Every method runs in its own try/except: a failure is recorded in the JSON and the table, and
the benchmark goes on.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from infill.cli import positive_int
from speculative.cache import PrefixKV
from speculative.decode import Decoder
from speculative.drafters import CombinedDrafter, ModelDrafter, NgramDrafter
from speculative.static import StaticKV, StaticModel, kv_cache, unsupported_reason


@dataclass
class Prompt:
    ids: list[int]
    kind: str


def bench_prompts(ar, count: int, max_new: int, seed: int = 0) -> list[Prompt]:
    """Half single-line gaps, half random spans of 1-6 lines, from held-out files."""
    from infill.autoregressive import build_prompt
    from infill.train import corpus
    from infill.train.heldout import line_tasks

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
        torch.cuda.synchronize(device)


def _error(exc: BaseException) -> str:
    """The one line a report keeps of a failure (the traceback goes to stderr)."""
    traceback.print_exc(file=sys.stderr)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def describe_cache(kv) -> str:
    if isinstance(kv, StaticKV):
        engine = kv.engine
        mode = {True: "CUDA graphs", False: "eager", "emulate": "emulated graphs"}[engine.graphs]
        if engine.static_shapes and not engine.graphs:
            mode += ", static shapes"  # a failed capture falls back to this
        if engine.kernels:
            mode += ", Triton kernels"
        return f"static ({mode})"
    return "HF DynamicCache"


# --- completions -------------------------------------------------------------------------


def run_ours(ar, prompts, drafter, max_new: int, make_kv=None) -> list[dict]:
    rows = []
    for p in prompts:
        # a fresh cache per prompt: no reuse across unrelated prompts (the static path keeps
        # its buffers and CUDA graphs per model, so a fresh cache costs nothing)
        decoder = Decoder(ar.model, kv=make_kv() if make_kv else None)
        _sync(ar.device)
        start = time.perf_counter()
        r = decoder.generate(p.ids, max_new_tokens=max_new, stop_ids=ar.stop_ids, drafter=drafter)
        _sync(ar.device)
        rows.append({"ms": (time.perf_counter() - start) * 1000, "tokens": r.tokens,
                     "forwards": r.forwards, "drafted": r.drafted, "accepted": r.accepted})
    return rows


def run_hf(ar, prompts, max_new: int, **generate_kwargs) -> list[dict]:
    rows = []
    for p in prompts:
        # not the prompt's last token (a FIM prompt ends with the middle token, one of our stop
        # ids): transformers 5.17's prompt lookup took a prompt ending in an EOS id for a
        # finished sequence and returned no tokens
        eos = sorted(ar.stop_ids - {p.ids[-1]})
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


def _median_rows(passes: list[list[dict]]) -> list[dict]:
    """One row per request over several passes: its median ms (greedy tokens are the same in
    every pass; the first pass's are kept)."""
    if len(passes) == 1:
        return passes[0]
    return [{**first, "ms": statistics.median(p[i]["ms"] for p in passes)}
            for i, first in enumerate(passes[0])]


def summarize(name: str, rows: list[dict], reference: list[dict] | None) -> dict:
    total_tokens = sum(len(r["tokens"]) for r in rows)
    total_s = sum(r["ms"] for r in rows) / 1000
    forwards = [r["forwards"] for r in rows if r["forwards"]]
    drafted = sum(r["drafted"] for r in rows)
    return {
        "method": name,
        "median_ms": statistics.median(r["ms"] for r in rows),
        # the measure: each request's tokens/s, then the median over requests
        "median_tokens_per_s": statistics.median(
            len(r["tokens"]) * 1000 / r["ms"] if r["ms"] > 0 else 0.0 for r in rows),
        "tokens_per_s": total_tokens / total_s if total_s else 0.0,
        "tokens_per_forward": (total_tokens / sum(forwards)) if forwards else None,
        "acceptance": (sum(r["accepted"] for r in rows) / drafted) if drafted else None,
        "greedy_equal": (sum(r["tokens"] == ref["tokens"] for r, ref in zip(rows, reference))
                         / len(rows)) if reference else None,
        "tokens": total_tokens,
        "per_request": [{"ms": round(r["ms"], 3), "tokens": len(r["tokens"])} for r in rows],
    }


METHODS = {"ar": "plain AR (ours)", "ar-hf-cache": "plain AR (ours, HF forward + cache)",
           "ngram": "speculative n-gram", "ngram-row": "speculative n-gram, one row",
           "ngram-python": "speculative n-gram, Python rules",
           "draft": "speculative draft model",
           "combined": "speculative combined", "hf": "HF generate",
           "hf-assisted": "HF assisted (draft model)", "hf-lookup": "HF prompt lookup"}


DRAFT_METHODS = {METHODS["draft"], METHODS["combined"], METHODS["hf-assisted"]}


def completion_methods(target, draft) -> dict:
    """name -> run(prompts, max_new_tokens). The first is the reference."""
    def ngram(native=None):
        return NgramDrafter(next_tokens=target.next_tokens, native=native)

    def model():
        return ModelDrafter(draft.model, 0.3)

    def combined():
        return CombinedDrafter(ngram(), ModelDrafter(draft.model, 0.3))

    return {
        "plain AR (ours)": lambda ps, n: run_ours(target, ps, None, n),
        "plain AR (ours, HF forward + cache)": lambda ps, n: run_ours(
            target, ps, None, n, make_kv=lambda: PrefixKV(target.model)),
        "speculative n-gram": lambda ps, n: run_ours(target, ps, ngram(), n),
        "speculative n-gram, one row": lambda ps, n: run_ours(
            target, ps, NgramDrafter(trees=False), n),
        # the drafter's rules in Python where the C module (`speculative._ngram`) runs them
        "speculative n-gram, Python rules": lambda ps, n: run_ours(
            target, ps, ngram(native=False), n),
        "speculative draft model": lambda ps, n: run_ours(target, ps, model(), n),
        "speculative combined": lambda ps, n: run_ours(target, ps, combined(), n),
        "HF generate": lambda ps, n: run_hf(target, ps, n),
        "HF assisted (draft model)": lambda ps, n: run_hf(target, ps, n,
                                                          assistant_model=draft.model),
        "HF prompt lookup": lambda ps, n: run_hf(target, ps, n, prompt_lookup_num_tokens=10),
    }


def run_completions(args, save=lambda report: None) -> dict:
    """Every method in turn; `save(report)` after each, so a run cut short keeps what it did."""
    from infill.models.loading import DEFAULT_MODELS, load_ar

    target = load_ar(args.target or DEFAULT_MODELS["target"], args.device, args.dtype)
    wanted = set(METHODS.values()) if args.methods == "all" else \
        {METHODS[k.strip()] for k in args.methods.split(",") if k.strip() in METHODS}
    draft = None  # loaded only for the methods that use it
    if wanted & DRAFT_METHODS:
        draft = load_ar(args.draft or DEFAULT_MODELS["draft"], args.device, args.dtype)
    prompts = bench_prompts(target, args.requests, args.max_new_tokens)
    methods = {name: run for name, run in completion_methods(target, draft).items()
               if name in wanted}
    warm_errors = {}
    for name, method in methods.items():  # warm-up: allocator, kernels, CUDA graph capture
        try:
            method(prompts[:2], 8)
        except Exception as exc:
            warm_errors[name] = _error(exc)
    report = {"device": str(target.device), "dtype": str(target.model.dtype),
              "requests": len(prompts), "max_new_tokens": args.max_new_tokens,
              "prompt_tokens_median": statistics.median(len(p.ids) for p in prompts),
              "results": []}
    report["passes"] = passes = args.passes
    runs: dict[str, list[list[dict]]] = {name: [] for name in methods}
    failed: dict[str, str] = {}
    seconds = dict.fromkeys(methods, 0.0)

    def summarize_runs() -> None:
        """The results so far: each method's requests at their median over its passes."""
        results, reference = [], None
        for name in methods:
            if name in failed:
                results.append({"method": name, "error": failed[name],
                                "warm_up_error": warm_errors.get(name)})
            elif runs[name]:
                rows = _median_rows(runs[name])
                reference = reference or rows
                results.append({**summarize(name, rows, reference), "seconds": seconds[name]})
        _ratios(results)
        report["results"] = results

    for done in range(1, passes + 1):  # the methods in turn, pass after pass: side by side
        for name, method in methods.items():
            if name in failed:
                continue
            began = time.perf_counter()
            try:
                runs[name].append(method(prompts, args.max_new_tokens))
            except Exception as exc:
                failed[name] = _error(exc)
            took = time.perf_counter() - began
            seconds[name] += took
            print(f"{name}, pass {done}: {took:.1f} s", file=sys.stderr, flush=True)
            summarize_runs()
            save(report)
    report["target_cache"] = describe_cache(kv_cache(target.model))
    if draft is not None:
        report["draft_cache"] = describe_cache(kv_cache(draft.model))
    return report


def _ratios(results: list[dict]) -> None:
    """Speed-ups as ratios of median tokens/s (per request), the issue's measure."""
    by_name = {r["method"]: r for r in results}
    for base, key in (("plain AR (ours)", "vs_plain_ar"),
                      ("HF assisted (draft model)", "vs_hf_assisted")):
        base_tps = by_name.get(base, {}).get("median_tokens_per_s")
        for r in results:
            r[key] = (r["median_tokens_per_s"] / base_tps
                      if base_tps and "median_tokens_per_s" in r else None)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    """A rich table, or plain aligned text where rich is not installed."""
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(row[i])) if i < len(row) else 0 for row in [columns, *rows])
                  for i in range(len(columns))]
        print(title)
        for row in [columns, *rows]:
            print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    Console(width=180).print(table)


def print_completions(report: dict) -> None:
    rows = []
    for r in report["results"]:
        if "error" in r:
            rows.append([r["method"], f"failed: {r['error'][:90]}"])
            continue
        rows.append([r["method"], _fmt(r["median_ms"], ".1f"),
                     _fmt(r["median_tokens_per_s"], ".0f"), _fmt(r["tokens_per_s"], ".0f"),
                     _fmt(r["vs_plain_ar"], ".2f"), _fmt(r["vs_hf_assisted"], ".2f"),
                     _fmt(r["tokens_per_forward"], ".2f"), _fmt(r["acceptance"], ".2f"),
                     "-" if r["greedy_equal"] is None else f"{100 * r['greedy_equal']:.0f}%"])
    print_table(f"speculative decoding: {report['requests']} held-out requests, greedy, max "
                f"{report['max_new_tokens']} new tokens, {report['device']} {report['dtype']}; "
                f"target cache: {report['target_cache']}",
                ("method", "median ms", "median tokens/s", "tokens/s, all", "x plain AR",
                 "x HF assisted",
                 "tokens/forward", "acceptance", "greedy = plain AR"), rows)


# --- steps at model shapes ---------------------------------------------------------------

SHAPES = {  # Qwen2 configs; "tiny" keeps the benchmark testable on a CPU
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                 tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                 tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
               tie_word_embeddings=False),
}
VERIFY = 8  # tokens per verify step


def build_shape(name: str, device: torch.device, dtype: torch.dtype):
    """A randomly initialised Qwen2ForCausalLM of that shape, made on the device in `dtype`
    (no CPU initialisation of billions of weights)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**SHAPES[name], rope_theta=1e6, max_position_embeddings=32768,
                         rms_norm_eps=1e-6)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype).eval()


def weight_bytes(model) -> int:
    """Bytes one decode step reads: every weight, but only a row of an untied embedding."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    embed = model.get_input_embeddings().weight
    if embed is not model.get_output_embeddings().weight:
        total -= embed.numel() * embed.element_size()
    return total


class _Timer:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, run_block, block: int) -> float:
        """ms per step of one block of `block` steps."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run_block()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / block
        begin = time.perf_counter()
        run_block()
        return (time.perf_counter() - begin) * 1000 / block


def time_cache(kv, context: list[int], tokens: int, reps: int, block: int,
               device: torch.device) -> float:
    """Median ms of one step feeding `tokens` tokens after `context`, the argmax of the last
    row read on the host each step (as decoding needs it)."""
    timer = _Timer(device)
    feed = [7] * tokens

    def run_block():
        for _ in range(block):
            kv.feed_argmax(feed)[-1]

    with torch.inference_mode():
        kv.prefill(context)
        run_block()  # warm-up
        kv.rollback(len(context))
        times = []
        for _ in range(reps):
            times.append(timer(run_block, block))
            kv.rollback(len(context))
    return statistics.median(times)


def bench_shape(name: str, device: torch.device, dtype: torch.dtype, args) -> dict:
    out = {"shape": name, "config": SHAPES[name], "dtype": str(dtype), "context": args.context,
           "methods": {}}
    try:
        model = build_shape(name, device, dtype)
    except Exception as exc:
        out["error"] = _error(exc)
        return out
    out["params"] = sum(p.numel() for p in model.parameters())
    out["weight_bytes"] = weight_bytes(model)
    out["floor_ms"] = out["weight_bytes"] / args.bandwidth * 1000
    out["static_unsupported"] = unsupported_reason(model)
    rng = random.Random(0)
    context = [rng.randrange(SHAPES[name]["vocab_size"]) for _ in range(args.context)]
    buckets = (1, VERIFY, 64)
    makers = {
        "HF eager (DynamicCache)": lambda: PrefixKV(model),
        "static eager": lambda: StaticKV(StaticModel(model, graphs=False)),
    }
    if device.type == "cuda":
        makers["static + CUDA graphs"] = lambda: StaticKV(
            StaticModel(model, graphs=True, buckets=buckets))
        # the torch forward instead of the Triton kernels (speculative.kernels), side by side
        makers["static + CUDA graphs, no Triton kernels"] = lambda: StaticKV(StaticModel(
            model, graphs=True, buckets=buckets, kernels=False))
        # the few-token steps' attention through SDPA instead of the default matmuls, side by
        # side (speculative.static.MATMUL_ATTENTION_TOKENS)
        makers["static + CUDA graphs, SDPA attention"] = lambda: StaticKV(StaticModel(
            model, graphs=True, buckets=buckets, matmul_attention_tokens=0, kernels=False))
        # graphs per attended length, not the whole cache (speculative.static.ATTEND_BUCKETS)
        makers["static + CUDA graphs, attend buckets"] = lambda: StaticKV(StaticModel(
            model, graphs=True, buckets=buckets, attend_buckets=True))
        # gate and up as one matmul (speculative.static.STACK_MLP), alone and with the above
        makers["static + CUDA graphs, stacked MLP"] = lambda: StaticKV(StaticModel(
            model, graphs=True, buckets=buckets, stack_mlp=True))
        makers["static + CUDA graphs, attend buckets + stacked MLP"] = lambda: StaticKV(
            StaticModel(model, graphs=True, buckets=buckets, attend_buckets=True, stack_mlp=True))
        if args.compile_steps:  # decode/verify compiled (inductor: fused kernels), then captured
            makers["static + compiled steps + CUDA graphs"] = lambda: StaticKV(StaticModel(
                model, graphs=True, buckets=buckets, compile_steps=True))
    else:  # the graph path's CPU twin, so the CPU run covers its code
        makers["static + emulated graphs"] = lambda: StaticKV(
            StaticModel(model, graphs="emulate", buckets=buckets))
    for method, make in makers.items():
        entry = out["methods"][method] = {}
        try:
            kv = make()
            if isinstance(kv, StaticKV) and kv.engine.graphs is True:
                entry["graphs_active"] = True
            for label, tokens in (("decode_ms", 1), ("verify8_ms", VERIFY)):
                try:
                    entry[label] = time_cache(kv, context, tokens, args.reps, args.block, device)
                except Exception as exc:
                    entry[label + "_error"] = _error(exc)
            if isinstance(kv, StaticKV) and entry.get("graphs_active"):
                entry["graphs_active"] = kv.engine.graphs is True  # capture may have fallen back
        except Exception as exc:
            entry["error"] = _error(exc)
        finally:
            kv = None
            gc.collect()
    if device.type == "cuda":
        out["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return out


def run_steps(args, save=lambda report: None) -> dict:
    """Every shape in turn; `save(report)` after each, so a run cut short keeps what it did."""
    from infill.models.loading import pick_device, pick_dtype

    device = pick_device(args.device)
    dtype = pick_dtype(device, args.dtype)
    report = {"device": str(device), "dtype": str(dtype), "bandwidth": args.bandwidth,
              "context": args.context, "torch": torch.__version__, "shapes": []}
    try:
        import transformers

        report["transformers"] = transformers.__version__
        if device.type == "cuda":
            report["gpu"] = torch.cuda.get_device_name(device)
    except Exception as exc:
        report["info_error"] = _error(exc)
    for name in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        if name not in SHAPES:
            known = ", ".join(SHAPES)
            report["shapes"].append({"shape": name, "error": f"unknown shape (known: {known})"})
            continue
        began = time.perf_counter()
        report["shapes"].append(bench_shape(name, device, dtype, args))
        print(f"shape {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        save(report)
    return report


def print_steps(report: dict) -> None:
    rows = []
    for shape in report["shapes"]:
        if "error" in shape:
            rows.append([shape["shape"], f"failed: {shape['error'][:100]}"])
            continue
        floor = shape["floor_ms"]
        rows.append([shape["shape"], "memory-bandwidth floor", _fmt(floor, ".3f"),
                     _fmt(floor, ".3f"), "1.00", ""])
        hf = shape["methods"].get("HF eager (DynamicCache)", {}).get("decode_ms")
        for method, entry in shape["methods"].items():
            if "error" in entry:
                rows.append(["", method, f"failed: {entry['error'][:100]}"])
                continue
            decode, verify = entry.get("decode_ms"), entry.get("verify8_ms")
            fallback = "" if entry.get("graphs_active", True) else " (capture failed: eager)"
            rows.append(["", method + fallback,
                         "failed" if decode is None else _fmt(decode, ".3f"),
                         "failed" if verify is None else _fmt(verify, ".3f"),
                         _fmt(decode / floor if decode else None, ".2f"),
                         _fmt(hf / decode if hf and decode else None, ".1f")])
    print_table(f"one step after a {report.get('context', '')}-token prompt, random weights, "
                f"{report['device']} {report.get('gpu', '')} {report['dtype']}; floor = weight "
                f"bytes / {report['bandwidth']:.3g} B/s",
                ("shape", "method", "decode ms", "verify-8 ms", "decode / floor",
                 "decode x HF eager"), rows)


def run(args) -> int:
    report = {}

    def save(part=None, key=None) -> None:
        if key == "steps":
            report["steps"] = part
        elif part is not None:
            report.update(part)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))

    if not args.no_completions:
        try:
            save(run_completions(args, save))
            print_completions(report)
        except Exception as exc:  # the step benchmark still runs
            report["completions_error"] = _error(exc)
            print(f"completions benchmark failed: {report['completions_error']}", file=sys.stderr)
        save()
    if args.shapes:
        save(run_steps(args, lambda steps: save(steps, "steps")), "steps")
        print_steps(report["steps"])
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("speculative", help="plain AR vs speculative decoding vs HF generate; "
                                           "--shapes: step times at real model shapes")
    p.add_argument("--device")
    p.add_argument("--dtype", help="float32, bfloat16 (default: bfloat16 on a GPU, float32 on "
                                   "a CPU)")
    p.add_argument("--methods", default="all",
                   help=f"comma-separated completion methods: all, or of {', '.join(METHODS)} "
                        "(the first of them in that order is the reference for greedy equality)")
    p.add_argument("--target")
    p.add_argument("--draft")
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--passes", type=positive_int, default=1,
                   help="passes over the requests, the methods in turn; a request's time is "
                        "its median over the passes")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--shapes", help=f"comma-separated, of: {', '.join(SHAPES)}")
    p.add_argument("--no-completions", action="store_true",
                   help="only the --shapes step benchmark")
    p.add_argument("--compile-steps", action="store_true",
                   help="also the steps compiled by torch.compile before their CUDA graph "
                        "capture (a GPU; a compile per shape and bucket: minutes)")
    p.add_argument("--context", type=int, default=512, help="prompt tokens before the timed steps")
    p.add_argument("--reps", type=int, default=20, help="timed blocks per step kind (median)")
    p.add_argument("--block", type=int, default=10, help="steps per timed block")
    p.add_argument("--bandwidth", type=float, default=4.8e12,
                   help="memory bandwidth in bytes/s for the floor (H200 HBM3e: 4.8e12)")
    p.add_argument("--json")
    p.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    """`python -m infill.bench.speculative ARGS`: the same benchmark without the `infill`
    command's other subcommands (whose imports need tree-sitter, absent on a bare GPU box)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m infill.bench")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(["speculative", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
