"""Where the diffusion engine loses when it does not know the gap's length (BENCHMARKS.md,
2026-11-29, tenth session).

On held-out lines, one token per forward, no syntax-guided remasking, side by side:
- oracle: a gap of exactly the expected text's tokens;
- pad: the 24-mask gap whose content the first forward's pad probabilities end (threshold 0.7);
- pad, true end: the same 24-mask gap with pads from the true length on, before any forward
  (the pad's canvas with the length right);
- AR length: a gap of exactly as many tokens as the AR model's greedy completion has.
Also how often each way of sizing the gap gets the length exactly right, and by how many tokens
it misses on average: the pad at thresholds 0.3 to 0.85, and the AR completion.
Usage: python scripts/diffusion_length_study.py [--tasks 200] [--device cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace

import torch
from rapidfuzz.distance import Levenshtein

from infill import autoregressive
from infill.bench.diffusion import heldout_cases
from infill.context import cut_completion
from infill.diffusion import engine as E
from infill.diffusion.sampler import denoise
from infill.models.loading import load_ar, load_diffusion
from infill.request import InfillRequest

GAP = E.DiffusionSettings().single_line_gap
THRESHOLDS = (0.3, 0.5, 0.7, 0.85)


def fill(dm, canvas_ids: list[int], start: int, gap: int, collapse: bool) -> str:
    filled, _ = denoise(E.forward_of(dm), torch.tensor([canvas_ids], device=dm.device), start,
                        start + gap, mask_id=dm.mask_id, banned_ids=dm.banned_ids,
                        collapse_id=E.collapse_id(dm) if collapse else None,
                        shift_logits=dm.shift_logits)
    return E.kept_text(dm, filled[0].tolist())[0]


@torch.inference_mode()
def pad_probabilities(dm, canvas_ids: list[int], start: int) -> list[float]:
    """The first forward's pad probability at each of the gap's positions, as the sampler sees
    it (banned tokens out)."""
    logits = E.forward_of(dm)(input_ids=torch.tensor([canvas_ids], device=dm.device)).logits
    gap = logits[0, start:start + GAP].float().clone()
    gap[:, sorted(set(dm.banned_ids) | {dm.mask_id})] = float("-inf")
    return torch.softmax(gap, -1)[:, E.collapse_id(dm)].tolist()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json")
    args = parser.parse_args()
    dm, ar = load_diffusion(device=args.device), load_ar(device=args.device)
    pad = E.collapse_id(dm)
    scores = {k: [] for k in ("oracle", "pad", "pad, true end", "AR length")}
    lengths = {**{f"pad {t}": [] for t in THRESHOLDS}, "AR": []}
    for case in heldout_cases(args.tasks):
        expected = case.expected.strip()
        true = max(1, len(E.encode(dm, case.expected)))
        request = InfillRequest(prefix=case.prefix, suffix=case.suffix, path=case.path,
                                engine="diffusion", max_tokens=64)
        ar_text, _ = autoregressive.generate(ar, replace(request, temperature=0.0), False)
        ar_length = len(E.encode(dm, ar_text))
        texts = {}
        ids, start = E.build_canvas(dm, case.prefix, case.suffix, true)
        texts["oracle"] = fill(dm, ids, start, true, False)
        ids, start = E.build_canvas(dm, case.prefix, case.suffix, GAP)
        texts["pad"] = fill(dm, ids, start, GAP, True)
        ended = list(ids)
        ended[start + min(true, GAP): start + GAP] = [pad] * (GAP - min(true, GAP))
        texts["pad, true end"] = fill(dm, ended, start, GAP, True)
        probabilities = pad_probabilities(dm, ids, start)
        for t in THRESHOLDS:
            ends = next((i for i, p in enumerate(probabilities) if p >= t), GAP)
            lengths[f"pad {t}"].append(ends - true)
        lengths["AR"].append(ar_length - true)
        if ar_length:
            ids, start = E.build_canvas(dm, case.prefix, case.suffix, ar_length)
            texts["AR length"] = fill(dm, ids, start, ar_length, False)
        else:
            texts["AR length"] = ""
        for name, text in texts.items():
            text = cut_completion(text, case.suffix, False, 1)[0].strip()
            scores[name].append((text == expected, Levenshtein.normalized_similarity(text, expected)))
    summary = {"tasks": args.tasks, "device": args.device, "completions": {}, "lengths": {}}
    for name, rows in scores.items():
        summary["completions"][name] = {"exact_match": statistics.fmean(r[0] for r in rows),
                                        "edit_similarity": statistics.fmean(r[1] for r in rows)}
        print(f"{name:14} exact match {100 * summary['completions'][name]['exact_match']:5.1f}%"
              f"  edit similarity {summary['completions'][name]['edit_similarity']:.3f}")
    for name, errors in lengths.items():
        summary["lengths"][name] = {"exact": statistics.fmean(e == 0 for e in errors),
                                    "mean_abs_error": statistics.fmean(abs(e) for e in errors)}
        print(f"length from {name:9}: exact {100 * summary['lengths'][name]['exact']:5.1f}%"
              f"  mean error {summary['lengths'][name]['mean_abs_error']:.2f} tokens")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
