"""Training batches for the AR FIM models and the masked-diffusion model.

Batches are built in DataLoader worker processes: each samples documents (weighted by length),
cuts an editor-shaped gap at character level, tokenizes all pieces of the batch with one
`encode_batch` call (Rust) and assembles fixed-length rows with numpy, so the GPU never waits
on Python-level token loops.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from infill.train.spans import sample_span, window
from infill.train.tokenizer import END, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, MASK, PAD

CHARS_PER_TOKEN = 3.3
IGNORE = -100


@dataclass(frozen=True)
class SpecialIds:
    end: int
    pad: int
    mask: int
    prefix: int
    suffix: int
    middle: int

    @classmethod
    def of(cls, tokenizer) -> "SpecialIds":
        ids = tokenizer.convert_tokens_to_ids
        return cls(ids(END), ids(PAD), ids(MASK), ids(FIM_PREFIX), ids(FIM_SUFFIX), ids(FIM_MIDDLE))


class DocSampler:
    """Picks documents with probability proportional to their length."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.cumulative = list(itertools.accumulate(len(t) for t in texts))

    def __call__(self, rng: random.Random) -> str:
        point = rng.randrange(self.cumulative[-1])
        return self.texts[bisect.bisect_right(self.cumulative, point)]


def _encode(tokenizer, pieces: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.backend_tokenizer.encode_batch(pieces, add_special_tokens=False)]


def fim_row(prefix: list[int], suffix: list[int], middle: list[int], ids: SpecialIds,
            length: int) -> list[int]:
    """<prefix>P<suffix>S<middle>M<end>, P cut on the left and S on the right to fit.

    The cut keeps the text nearest the gap, as inference does with a long file.
    """
    middle = middle[: length // 2]
    budget = length - len(middle) - 4
    keep_suffix = min(len(suffix), max(budget // 3, budget - len(prefix)))
    keep_prefix = min(len(prefix), budget - keep_suffix)
    prefix = prefix[len(prefix) - keep_prefix:]
    return ([ids.prefix] + prefix + [ids.suffix] + suffix[:keep_suffix] + [ids.middle]
            + middle + [ids.end])


def ar_batch(tokenizer, ids: SpecialIds, docs: DocSampler, rng: random.Random, batch_size: int,
             seq_len: int, fim_rate: float) -> dict[str, torch.Tensor]:
    """Next-token rows: FIM (PSM) at fim_rate, plain left-to-right code otherwise."""
    max_chars = int(seq_len * CHARS_PER_TOKEN)
    pieces, is_fim = [], []
    for _ in range(batch_size):
        text = window(docs(rng), rng, max_chars)
        if rng.random() < fim_rate:
            s, e = sample_span(text, rng)
            pieces += [text[:s], text[e:], text[s:e]]
            is_fim.append(True)
        else:
            pieces.append(text)
            is_fim.append(False)
    encoded = iter(_encode(tokenizer, pieces))
    rows = np.full((batch_size, seq_len + 1), ids.pad, dtype=np.int64)
    lengths = np.zeros(batch_size, dtype=np.int64)
    for i, fim in enumerate(is_fim):
        if fim:
            p, s, m = next(encoded), next(encoded), next(encoded)
            row = fim_row(p, s, m, ids, seq_len + 1)
        else:
            row = next(encoded)[: seq_len + 1]
        rows[i, : len(row)] = row
        lengths[i] = len(row)
    inputs = torch.from_numpy(rows[:, :-1].copy())
    labels = torch.from_numpy(rows[:, 1:].copy())
    positions = torch.arange(seq_len)
    labels[positions[None, :] >= torch.from_numpy(lengths - 1)[:, None]] = IGNORE
    return {"input_ids": inputs, "labels": labels}


def diffusion_row(prefix: list[int], middle: list[int], surplus: int, suffix: list[int],
                  ids: SpecialIds, length: int) -> tuple[list[int], int, int]:
    """prefix + middle + surplus pads + suffix fitted to length; returns (row, gap_start, gap_end).

    The surplus pads stand where the model will later find more masks than the gap needs:
    it learns to fill the tail of an oversized gap with pads, which then collapse.
    """
    gap = middle + [ids.pad] * surplus
    budget = length - len(gap)
    keep_suffix = min(len(suffix), max(budget // 3, budget - len(prefix)))
    keep_prefix = min(len(prefix), budget - keep_suffix)
    row = prefix[len(prefix) - keep_prefix:] + gap + suffix[:keep_suffix]
    return row, keep_prefix, keep_prefix + len(gap)


def diffusion_batch(tokenizer, ids: SpecialIds, docs: DocSampler, rng: random.Random,
                    batch_size: int, seq_len: int, infill_rate: float = 0.75,
                    max_gap: int = 128, eps: float = 0.02) -> dict[str, torch.Tensor]:
    """MDLM/LLaDA rows: mask ratio t ~ U(eps, 1) over the maskable region, loss weight 1/t.

    Infill rows mask only a gap (an editor-shaped span plus surplus pads); the other rows mask
    the whole sequence, which keeps the model a general code model.
    """
    max_chars = int(seq_len * CHARS_PER_TOKEN)
    max_gap = min(max_gap, seq_len // 2)
    texts, spans = [], []
    for _ in range(batch_size):
        text = window(docs(rng), rng, max_chars)
        texts.append(text)
        spans.append(sample_span(text, rng) if rng.random() < infill_rate else None)
    pieces = []
    for text, span in zip(texts, spans):
        pieces += [text] if span is None else [text[:span[0]], text[span[0]:span[1]], text[span[1]:]]
    encoded = iter(_encode(tokenizer, pieces))
    rows = np.full((batch_size, seq_len), ids.end, dtype=np.int64)
    maskable = np.zeros((batch_size, seq_len), dtype=bool)
    for i, span in enumerate(spans):
        if span is None:
            row = next(encoded)[:seq_len]
            rows[i, : len(row)] = row
            maskable[i, : len(row)] = True
            continue
        p, m, s = next(encoded), next(encoded), next(encoded)
        m = m[:max_gap]
        surplus = 0 if rng.random() < 0.25 else rng.randint(1, max(1, max_gap - len(m)))
        row, g0, g1 = diffusion_row(p, m, surplus, s, ids, seq_len)
        rows[i, : len(row)] = row
        maskable[i, g0:g1] = True
    t = np.array([rng.uniform(eps, 1.0) for _ in range(batch_size)])
    noise = np.random.default_rng(rng.getrandbits(63)).random((batch_size, seq_len))
    masked = maskable & (noise < t[:, None])
    for i in range(batch_size):  # at least one masked token per row with anything to mask
        if not masked[i].any() and maskable[i].any():
            masked[i, np.flatnonzero(maskable[i])[0]] = True
    targets = np.where(masked, rows, IGNORE)
    inputs = np.where(masked, ids.mask, rows)
    region = np.maximum(maskable.sum(1), 1)
    return {
        "input_ids": torch.from_numpy(inputs),
        "labels": torch.from_numpy(targets),
        "weights": torch.from_numpy((1.0 / (t * region)).astype(np.float32)),
    }


class BatchStream(IterableDataset):
    """Endless batches; each DataLoader worker draws from its own seeded generator."""

    def __init__(self, kind: str, texts: list[str], tokenizer, batch_size: int, seq_len: int,
                 seed: int, fim_rate: float = 0.9):
        self.kind, self.texts, self.tokenizer = kind, texts, tokenizer
        self.batch_size, self.seq_len, self.seed, self.fim_rate = batch_size, seq_len, seed, fim_rate

    def __iter__(self):
        info = get_worker_info()
        rng = random.Random(self.seed * 1009 + (info.id if info else 0))
        docs, ids = DocSampler(self.texts), SpecialIds.of(self.tokenizer)
        while True:
            yield self.batch(docs, ids, rng)

    def batch(self, docs: DocSampler, ids: SpecialIds, rng: random.Random):
        if self.kind == "diffusion":
            return diffusion_batch(self.tokenizer, ids, docs, rng, self.batch_size, self.seq_len)
        return ar_batch(self.tokenizer, ids, docs, rng, self.batch_size, self.seq_len, self.fim_rate)


def fixed_batches(kind: str, texts: list[str], tokenizer, batch_size: int, seq_len: int,
                  count: int, seed: int = 1234) -> list[dict[str, torch.Tensor]]:
    """The same held-out batches at every evaluation, so loss curves are comparable."""
    stream = BatchStream(kind, texts, tokenizer, batch_size, seq_len, seed)
    rng = random.Random(seed)
    docs, ids = DocSampler(texts), SpecialIds.of(tokenizer)
    return [stream.batch(docs, ids, rng) for _ in range(count)]


def cosine_lr(progress: float, step: int, peak: float, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak over the time budget."""
    warm = min(1.0, (step + 1) / warmup_steps)
    return peak * warm * (0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0))))
