"""Replays the target's greedy completions through drafters: tokens per round, no GPU needed.

Greedy speculation accepts a draft's longest prefix that the target's own greedy continuation
starts with, then the target's next token: so with the target's greedy completion of each
request at hand, the rounds any drafter would take are counted exactly, on a CPU, without
running the target again. (Times are not: a round's cost depends on the device.)

  python scripts/draft_replay.py [--requests 80] [--seed 0] [--greedy FILE] [--json FILE]

The completions come from the speculative bench's prompts (`bench_prompts`), decoded once by
the shipped target on this machine's device and kept in `--greedy` (made when missing).
Drafters replayed:
- `n-gram`: the shipped drafter, as the decoder calls it on a GPU (up to 15 tokens a round,
  7 from a one-token match);
- `n-gram, best of R rows`: the drafts of the R heaviest n-gram candidates verified side by side
  (the vote's first), the longest accepted one kept: what a verify step of R rows would give;
- `n-gram steered by the draft model`: where the shipped draft model's next token differs from
  the vote's first, the vote among the candidates that agree with it, else that token alone;
- `n-gram tree`: the tree a greedy round verifies on a GPU (`NgramDrafter.propose_tree` with the
  shipped target's next-token table, 32 tokens a step with the re-fed ones).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infill.bench.speculative import bench_prompts  # noqa: E402
from infill.models.loading import DEFAULT_MODELS, load_ar, load_next_tokens  # noqa: E402
from speculative.decode import FREE_DRAFT, Decoder  # noqa: E402
from speculative.drafters import NgramDrafter, Tree, vote  # noqa: E402

MAX_NEW = 48


def greedy_completions(path: Path, requests: int, seed: int) -> list[dict]:
    if path.exists():
        return json.loads(path.read_text())
    ar = load_ar(DEFAULT_MODELS["target"])
    rows = []
    for p in bench_prompts(ar, requests, MAX_NEW, seed):
        r = Decoder(ar.model).generate(p.ids, max_new_tokens=MAX_NEW, stop_ids=ar.stop_ids)
        # the stop token, when decoding stopped on one, is the target's last greedy choice
        tail = [min(ar.stop_ids)] if r.stopped_by == "stop_token" else []
        rows.append({"prompt": p.ids, "greedy": r.tokens + tail, "stops": sorted(ar.stop_ids)})
    path.write_text(json.dumps(rows))
    return rows


def accepted(draft: list[int], truth: list[int]) -> int:
    n = 0
    while n < len(draft) and n < len(truth) and draft[n] == truth[n]:
        n += 1
    return n


def replay(row: dict, propose) -> list[int]:
    """Accepted drafts per round, the decoder's loop over a known greedy sequence."""
    prompt, seq, stops = row["prompt"], row["greedy"], set(row["stops"])
    context, rounds, i = list(prompt), [], 0
    while i < len(seq) and seq[i] not in stops and i + 1 < MAX_NEW:
        context.extend(seq[len(context) - len(prompt):i + 1])  # the tokens taken so far
        truth = seq[i + 1:]
        n = accepted(propose(context, min(FREE_DRAFT, MAX_NEW - i - 1), truth), truth)
        rounds.append(n)
        if any(t in stops for t in truth[:n]) or i + 1 + n >= MAX_NEW:
            break
        i += n + 1
    return rounds


def replay_trees(row: dict, drafter: NgramDrafter, step: int = 32) -> list[int]:
    """`replay` for trees: the longest branch the greedy sequence follows; the tokens of an
    accepted path that leaves the first branch are re-fed, and take room in the next step."""
    prompt, seq, stops = row["prompt"], row["greedy"], set(row["stops"])
    context, rounds, i, refeed = list(prompt), [], 0, 0
    while i < len(seq) and seq[i] not in stops and i + 1 < MAX_NEW:
        context.extend(seq[len(context) - len(prompt):i + 1])
        truth = seq[i + 1:]
        tree = drafter.propose_tree(context, min(FREE_DRAFT, MAX_NEW - i - 1), step - 1 - refeed)
        # the target's choice at each node: the greedy token at the node's depth
        path = tree.walk([truth[d] if d < len(truth) else -1 for d in tree.depths])
        n = len(path)
        refeed = n - Tree.in_row(path)
        rounds.append(n)
        if any(t in stops for t in truth[:n]) or i + 1 + n >= MAX_NEW:
            break
        i += n + 1
    return rounds


def best_of_rows(ngram: NgramDrafter, rows: int):
    def propose(context, k, truth):
        starts, voted = ngram.lookup(context, k)
        drafts = [voted]
        for at in sorted(starts, key=starts.__getitem__, reverse=True):
            draft = context[at:at + k]
            if len(drafts) < rows and draft and not any(d[:len(draft)] == draft for d in drafts):
                drafts.append(draft)
        return max(drafts, key=lambda d: accepted(d, truth))
    return propose


def steered_by(ngram: NgramDrafter, model, tally: dict):
    """tally: counts, over the rounds whose vote starts wrong, those where the model is right."""
    @torch.inference_mode()
    def propose(context, k, truth):
        starts, voted = ngram.lookup(context, k)
        first = int(model(torch.tensor([context[-512:]])).logits[0, -1].argmax())
        if truth and not (voted and voted[0] == truth[0]):
            tally["vote_wrong"] += 1
            tally["model_right_there"] += first == truth[0]
        if voted and voted[0] == first:
            return voted
        agree = {at: w for at, w in starts.items() if at < len(context) and context[at] == first}
        return vote(context, agree, k) if agree else [first]
    return propose


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", default="runs/draft-replay-greedy.json")
    p.add_argument("--no-model", action="store_true", help="leave out the draft-model drafter")
    p.add_argument("--json")
    args = p.parse_args()
    Path(args.greedy).parent.mkdir(parents=True, exist_ok=True)
    rows = greedy_completions(Path(args.greedy), args.requests, args.seed)
    ngram = NgramDrafter()
    drafters = {"n-gram": lambda c, k, t: ngram.propose(c, 1, free_k=k).tokens,
                "n-gram, best of 2 rows": best_of_rows(ngram, 2),
                "n-gram, best of 4 rows": best_of_rows(ngram, 4)}
    tally = {"vote_wrong": 0, "model_right_there": 0}
    if not args.no_model:
        draft = load_ar(DEFAULT_MODELS["draft"], "cpu").model
        drafters["n-gram steered by the draft model"] = steered_by(ngram, draft, tally)
    report = {"requests": len(rows), "greedy_tokens": sum(len(r["greedy"]) for r in rows),
              "drafters": {}, "steering": tally}
    replays = {name: (lambda row, propose=propose: replay(row, propose))
               for name, propose in drafters.items()}
    tree = NgramDrafter(next_tokens=load_next_tokens(DEFAULT_MODELS["target"]))
    replays["n-gram tree"] = lambda row: replay_trees(row, tree)
    print(f"{'drafter':36} {'tokens/round':>12} {'rounds':>7} {'0 accepted':>11}")
    for name, replayed in replays.items():
        accepted_per_round = [n for r in rows for n in replayed(r)]
        entry = report["drafters"][name] = {
            "rounds": len(accepted_per_round),
            "tokens_per_round": statistics.mean(n + 1 for n in accepted_per_round),
            "share_of_rounds_accepting_none":
                sum(n == 0 for n in accepted_per_round) / len(accepted_per_round)}
        print(f"{name:36} {entry['tokens_per_round']:12.3f} {entry['rounds']:7d} "
              f"{entry['share_of_rounds_accepting_none']:11.1%}")
    if tally["vote_wrong"]:
        print(f"the draft model's next token, where the vote's first is wrong: right in "
              f"{tally['model_right_there']} of {tally['vote_wrong']} rounds")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
