"""How well could a small head on the target's own states draft its next token? A study for
speculative decoding (issue 3), not a shipped feature.

In a greedy verify step the target's graph has, at the position where its drafts stop being
accepted, the final hidden state h and the token g the target chose there. A head that maps
(h, embedding of g) to the token after g (Hydra-style: an MLP, the target's tied embeddings as
its output layer) would cost a few kernels inside that graph and give the next round a first
draft token where n-gram lookup has none or a wrong one: 58% of the rounds
(`scripts/draft_replay.py`, BENCHMARKS.md, eighth session).

This trains such a head for `--seconds` on windows of the training split (the target frozen;
label: the target's own argmax one position on), then measures it on the speculative bench's
held-out requests: at every token of the target's greedy completions, whether the head names
the next one, over all positions and over those where the n-gram draft's first token is wrong.

  python scripts/head_study.py [--seconds 150] [--hidden 768] [--requests 80] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infill.bench.speculative import bench_prompts  # noqa: E402
from infill.models.loading import DEFAULT_MODELS, load_ar  # noqa: E402
from infill.train import corpus  # noqa: E402
from speculative.decode import Decoder  # noqa: E402
from speculative.drafters import NgramDrafter  # noqa: E402


class Head(torch.nn.Module):
    """h + MLP([h; E g]) -> the target's tied output layer."""

    def __init__(self, embed: torch.Tensor, hidden: int):
        super().__init__()
        width = embed.shape[1]
        self.embed = embed  # frozen, the target's own
        self.up = torch.nn.Linear(2 * width, hidden)
        self.down = torch.nn.Linear(hidden, width)

    def forward(self, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        z = h + self.down(F.silu(self.up(torch.cat([h, self.embed[g]], -1))))
        return z @ self.embed.T


@torch.no_grad()
def states(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Final (normed) hidden states and the argmax tokens, [B, T, D] and [B, T]."""
    out = model(input_ids=ids, output_hidden_states=True)
    return out.hidden_states[-1].float(), out.logits.argmax(-1)


def windows(tokenizer, texts: list[str], length: int) -> list[list[int]]:
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [row[i:i + length] for row in ids for i in range(0, len(row) - length, length)]


def train(ar, head: Head, seconds: float, batch: int, length: int, seed: int) -> dict:
    files, _ = corpus.split(corpus.collect())
    rng = random.Random(seed)
    texts = [f.text for f in rng.sample(files, min(len(files), 3000))]
    rows = windows(ar.tokenizer, texts, length + 1)
    optimizer = torch.optim.AdamW(head.parameters(), lr=2e-3)
    started, steps, losses = time.perf_counter(), 0, []
    while time.perf_counter() - started < seconds:
        ids = torch.tensor(rng.sample(rows, batch), device=ar.device)
        h, best = states(ar.model, ids)
        # position i: h_i and the next real token; the label: the target's argmax at i + 1
        logits = head(h[:, :-1], ids[:, 1:])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), best[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        losses.append(loss.item())
    return {"steps": steps, "windows": len(rows), "tokens_seen": steps * batch * length,
            "loss_first": losses[0] if losses else None,
            "loss_last": sum(losses[-20:]) / max(1, len(losses[-20:]))}


@torch.no_grad()
def evaluate(ar, head: Head, requests: int) -> dict:
    ngram = NgramDrafter()
    hits = total = miss_hits = miss_total = 0
    for p in bench_prompts(ar, requests, 48):
        tokens = Decoder(ar.model).generate(p.ids, max_new_tokens=48, stop_ids=ar.stop_ids).tokens
        if len(tokens) < 2:
            continue
        seq = torch.tensor([p.ids + tokens], device=ar.device)
        h, _ = states(ar.model, seq)
        at = len(p.ids) - 1  # the hidden state that chose tokens[0]
        guess = head(h[0, at:at + len(tokens) - 1], seq[0, at + 1:at + len(tokens)]).argmax(-1)
        for j, g in enumerate(guess.tolist()):  # g: the head's token after tokens[j]
            right = g == tokens[j + 1]
            hits, total = hits + right, total + 1
            draft = ngram.propose(p.ids + tokens[:j + 1], 1).tokens
            if not draft or draft[0] != tokens[j + 1]:
                miss_hits, miss_total = miss_hits + right, miss_total + 1
    return {"positions": total, "accuracy": hits / max(1, total),
            "positions_ngram_wrong": miss_total,
            "accuracy_where_ngram_wrong": miss_hits / max(1, miss_total)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=150)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--requests", type=int, default=80)
    p.add_argument("--device")
    p.add_argument("--json")
    args = p.parse_args()
    torch.manual_seed(0)
    ar = load_ar(DEFAULT_MODELS["target"], args.device, None)
    ar.model.requires_grad_(False)
    embed = ar.model.get_input_embeddings().weight.detach().float()
    head = Head(embed, args.hidden).to(ar.device)
    report = {"device": str(ar.device), "hidden": args.hidden,
              "head_params": sum(p.numel() for p in head.parameters() if p.requires_grad)}
    report["untrained"] = evaluate(ar, head, args.requests)
    report["training"] = train(ar, head, args.seconds, args.batch, args.length, seed=0)
    report["trained"] = evaluate(ar, head, args.requests)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
