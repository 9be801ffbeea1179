"""Candidate lengths for the diffusion engine (BENCHMARKS.md, 2026-11-29, fourth session).

Each held-out line is completed with the content ended at several pad thresholds; one candidate
is then picked by the model's mean log-probability of the filled gap (one more forward). Prints
the edit similarity of each threshold, of the two picks, and of the best of the candidates.
Usage: python scripts/diffusion_length_candidates.py [--tasks 80] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from rapidfuzz.distance import Levenshtein

from infill.bench.diffusion import heldout_cases
from infill.diffusion import engine as E
from infill.models.loading import load_diffusion
from infill.request import InfillRequest

THRESHOLDS = (0.5, 0.7, 0.85)
GAP = E.DiffusionSettings().single_line_gap  # the engine's gap for a line


@torch.inference_mode()
def scores(dm, request: InfillRequest, text: str) -> tuple[float, float]:
    """Mean log-probability of the filled gap: over the content and the pad that ends it, and
    over the whole gap."""
    ids = E.encode(dm, text)[:GAP]
    pad = E.collapse_id(dm)
    canvas, start = E.build_canvas(dm, request.prefix, request.suffix, GAP)
    body = ids + [pad] * (GAP - len(ids))
    canvas[start:start + GAP] = body
    logits = dm.model(input_ids=torch.tensor([canvas], device=dm.device)).logits
    logp = torch.log_softmax(logits[0, start:start + GAP].float(), -1)
    picked = logp[torch.arange(GAP), torch.tensor(body, device=logp.device)]
    end = min(GAP, len(ids) + 1)
    return float(picked[:end].mean()), float(picked.mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=80)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dm = load_diffusion(device=args.device)
    similarity = {t: [] for t in THRESHOLDS}
    by_end, by_gap, best = [], [], []
    for case in heldout_cases(args.tasks):
        request = InfillRequest(prefix=case.prefix, suffix=case.suffix, path=case.path,
                                engine="diffusion", max_tokens=48)
        candidates = []
        for t in THRESHOLDS:
            text, _, _ = E.generate(dm, request, False, E.DiffusionSettings(pad_threshold=t))
            s = Levenshtein.normalized_similarity(text.rstrip(), case.expected.rstrip())
            similarity[t].append(s)
            candidates.append((s, *scores(dm, request, text)))
        best.append(max(c[0] for c in candidates))
        by_end.append(max(candidates, key=lambda c: c[1])[0])
        by_gap.append(max(candidates, key=lambda c: c[2])[0])
    for t in THRESHOLDS:
        print(f"pad threshold {t}: edit similarity {statistics.fmean(similarity[t]):.3f}")
    print(f"picked by the score of content + end: {statistics.fmean(by_end):.3f}")
    print(f"picked by the score of the whole gap: {statistics.fmean(by_gap):.3f}")
    print(f"best of the candidates (oracle): {statistics.fmean(best):.3f}")


if __name__ == "__main__":
    main()
