"""`infill train next-tokens`: the table of likeliest next tokens that the n-gram drafter's trees
guess from (`speculative.drafters.NextTokens`), counted over the training split of the corpus
with a model's own tokenizer and written beside that model, where `load_ar` finds it."""

from __future__ import annotations

import random
from pathlib import Path

from infill.models.loading import NEXT_TOKENS_FILE, load_tokenizer
from infill.train import corpus
from speculative.drafters import NextTokens

# Contexts seen fewer times are left out: at 200 the shipped table (0.72 MiB) fits the shipped
# models' 48 MiB budget beside the weights; at 30 it held 4.4x the pairs (3.1 MiB) for 1.7%
# more tokens a round in the bench's replay (BENCHMARKS.md, twelfth session).
MIN_COUNT = 200


def build(model_dir: Path, roots: list[Path] | None = None, files: int = 4000, top: int = 4,
          min_count: int = MIN_COUNT, seed: int = 0) -> dict:
    """Count `files` training-split files (drawn with `seed`; held-out packages and their
    copies never) and write model_dir/next_tokens.safetensors; returns what it did."""
    tokenizer = load_tokenizer(model_dir)
    train, _ = corpus.split(corpus.collect(roots))
    if not train:
        raise SystemExit("no training files found (see MODELS.md for the corpus)")
    random.Random(seed).shuffle(train)
    chosen = train[:files]
    counted = [0]

    def sequences():
        for f in chosen:
            ids = tokenizer(f.text)["input_ids"]
            counted[0] += len(ids)
            yield ids
    table = NextTokens.count(sequences(), top=top, min_count=min_count)
    out = Path(model_dir) / NEXT_TOKENS_FILE
    table.save(out)
    return {"out": str(out), "files": len(chosen), "tokens": counted[0],
            "pairs": len(table.pairs), "singles": len(table.singles),
            "bytes": out.stat().st_size}
