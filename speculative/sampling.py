"""Token distributions and the exact speculative acceptance rule (Leviathan et al. 2022).

Temperature and top-p are applied identically to the target's p and the draft's q, in fp32,
so the accepted tokens are distributed exactly as the target alone would sample them.
"""

from __future__ import annotations

import torch


def nucleus(scaled_logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """The logits (already divided by the temperature) with every token outside the top-p
    nucleus at -inf: the smallest set of the most likely tokens whose probability reaches
    top_p (never empty)."""
    if top_p >= 1.0:
        return scaled_logits
    sorted_probs, order = torch.softmax(scaled_logits, dim=-1).sort(dim=-1, descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
    return scaled_logits.masked_fill(torch.zeros_like(outside).scatter(-1, order, outside),
                                     float("-inf"))


def probabilities(logits: torch.Tensor, temperature: float, top_p: float = 1.0) -> torch.Tensor:
    """softmax(logits / T) restricted to the top-p nucleus, renormalized; one-hot at T = 0."""
    logits = logits.float()
    if temperature <= 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return torch.softmax(nucleus(logits / temperature, top_p), dim=-1)


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One sample of a distribution over the vocabulary (probs on any device)."""
    return int(torch.multinomial(probs.float().cpu(), 1, generator=generator))


def accept_greedy(best: list[int], drafts: list[int]) -> tuple[int, int]:
    """Greedy acceptance from the target's argmax at each draft position and one after the
    last: the drafts that match it, then the target's own next token."""
    n = 0
    while n < len(drafts) and drafts[n] == best[n]:
        n += 1
    return n, best[n]


def accept_drafts(p: torch.Tensor, drafts: list[int], q: torch.Tensor | None,
                  generator: torch.Generator | None, greedy: bool) -> tuple[int, int]:
    """(number of drafts accepted, the token that follows them).

    p: [k + 1, V] target distributions at each draft position and one after the last;
    q: [k, V] draft distributions, or None for drafts without probabilities (n-gram lookup),
    which count as q = one-hot on the drafted token. On rejection the next token is drawn from
    norm(max(0, p - q)); when every draft is accepted, from p after the last (the bonus token).
    """
    if greedy:
        return accept_greedy(p.argmax(-1).tolist(), drafts)
    p = p.float().cpu()
    uniforms = torch.rand(len(drafts), generator=generator)
    for i, token in enumerate(drafts):
        q_token = 1.0 if q is None else float(q[i, token])
        if q_token > 0 and uniforms[i] < min(1.0, float(p[i, token]) / q_token):
            continue
        if q is None:
            residual = p[i].clone()
            residual[token] = 0.0
        else:
            residual = (p[i] - q[i].float().cpu()).clamp_min(0.0)
        if float(residual.sum()) <= 0:  # p == q: rejection has probability 0; be safe
            residual = p[i]
        return i, draw(residual / residual.sum(), generator)
    return len(drafts), draw(p[len(drafts)], generator)
