"""`infill train prep`: the corpus split and the shared tokenizer, written to one data folder."""

from __future__ import annotations

import json
import random
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from infill.train import corpus
from infill.train.tokenizer import save, train_tokenizer


def tokenizer_sample(texts: list[str], max_chars: int, seed: int = 0) -> list[str]:
    """A random subset of the training texts, so BPE training stays under a minute."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    sample, total = [], 0
    for i in order:
        if total >= max_chars:
            break
        sample.append(texts[i])
        total += len(texts[i])
    return sample


def prepare(out_dir: Path, roots: list[Path] | None, vocab_size: int,
            tokenizer_chars: int, tokenizer_dir: Path | None = None,
            extra_roots: list[Path] | None = None) -> dict:
    """Writes the corpus split and the tokenizer (trained here, or copied from tokenizer_dir
    to resume with the very tokenizer an earlier run trained)."""
    stats = corpus.prepare(out_dir, roots, extra_roots)
    train_texts = [f.text for f in corpus.read_jsonl(out_dir / "train.jsonl")]
    if tokenizer_dir is not None:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    else:
        tokenizer = train_tokenizer(tokenizer_sample(train_texts, tokenizer_chars), vocab_size)
    save(tokenizer, out_dir / "tokenizer")
    probe = tokenizer_sample(train_texts, 2_000_000, seed=1)
    n_tokens = sum(len(e.ids) for e in tokenizer.backend_tokenizer.encode_batch(probe))
    stats["chars_per_token"] = round(sum(map(len, probe)) / n_tokens, 3)
    stats["vocab_size"] = len(tokenizer)
    (out_dir / "corpus.json").write_text(json.dumps(stats, indent=2))
    return stats
