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

from infill.train.augment import name_pool, rename_identifiers
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
    """Picks documents in proportion to their length, with each package's total share
    flattened to (its characters) ** package_alpha.

    At alpha 1 a package is drawn as often as its size says; below 1 the few huge packages of
    site-packages (and their near-copies, such as the model files of transformers) give way to
    the many small ones that look like the code users write.
    """

    def __init__(self, texts: list[str], packages: list[str] | None = None,
                 package_alpha: float = 1.0):
        self.texts = texts
        weights = [float(len(t)) for t in texts]
        if packages is not None and package_alpha != 1.0:
            size: dict[str, int] = {}
            for package, text in zip(packages, texts):
                size[package] = size.get(package, 0) + len(text)
            weights = [w * size[p] ** (package_alpha - 1.0) for w, p in zip(weights, packages)]
        self.cumulative = list(itertools.accumulate(weights))

    def __call__(self, rng: random.Random) -> str:
        point = rng.random() * self.cumulative[-1]
        index = bisect.bisect_right(self.cumulative, point)
        return self.texts[min(index, len(self.texts) - 1)]


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


# How many examples share one training row when packing: short windows put more gaps (the
# only tokens that teach infilling) into each row, full windows keep the long context.
PACKING = ((1, 0.4), (2, 0.3), (4, 0.3))


def _examples_per_row(rng: random.Random, pack: bool) -> int:
    if not pack:
        return 1
    return rng.choices([k for k, _ in PACKING], [w for _, w in PACKING])[0]


def ar_batch(tokenizer, ids: SpecialIds, docs: DocSampler, rng: random.Random, batch_size: int,
             seq_len: int, fim_rate: float, pack: bool = False, middle_weight: float = 1.0,
             rename_rate: float = 0.0, names: dict | None = None) -> dict[str, torch.Tensor]:
    """Next-token rows: FIM (PSM) at fim_rate, plain left-to-right code otherwise.

    With pack, a row holds 1, 2 or 4 examples, each ending in the end token. With
    middle_weight != 1 the batch carries per-token loss weights that give the middle and its
    end token that weight and everything else 1. With rename_rate, that share of examples has
    the names it defines renamed to others of `names` (`augment.rename_identifiers`).
    """
    plan = []  # per row: list of (is_fim, token budget)
    pieces = []
    for _ in range(batch_size):
        k = _examples_per_row(rng, pack)
        budget = (seq_len + 1) // k
        row = []
        for _ in range(k):
            text = window(docs(rng), rng, int(budget * CHARS_PER_TOKEN))
            if rename_rate and names and rng.random() < rename_rate:
                text = rename_identifiers(text, names, rng)
            fim = rng.random() < fim_rate
            if fim:
                s, e = sample_span(text, rng)
                pieces += [text[:s], text[e:], text[s:e]]
            else:
                pieces.append(text)
            row.append((fim, budget))
        plan.append(row)
    encoded = iter(_encode(tokenizer, pieces))
    rows = np.full((batch_size, seq_len + 1), ids.pad, dtype=np.int64)
    weights = np.ones((batch_size, seq_len + 1), dtype=np.float32)
    lengths = np.zeros(batch_size, dtype=np.int64)
    for i, examples in enumerate(plan):
        row, middle_spans = [], []
        for fim, budget in examples:
            if fim:
                p, s, m = next(encoded), next(encoded), next(encoded)
                example = fim_row(p, s, m, ids, budget)
                middle_len = len(example) - example.index(ids.middle) - 1  # middle + end
                middle_spans.append((len(row) + len(example) - middle_len, len(row) + len(example)))
            else:
                example = next(encoded)[: budget - (len(examples) > 1)]
                if len(examples) > 1:
                    example = example + [ids.end]
            row += example
        rows[i, : len(row)] = row
        lengths[i] = len(row)
        for a, b in middle_spans:
            weights[i, a:b] = middle_weight
    inputs = torch.from_numpy(rows[:, :-1].copy())
    labels = torch.from_numpy(rows[:, 1:].copy())
    positions = torch.arange(seq_len)
    labels[positions[None, :] >= torch.from_numpy(lengths - 1)[:, None]] = IGNORE
    batch = {"input_ids": inputs, "labels": labels}
    if middle_weight != 1.0:
        batch["loss_weights"] = torch.from_numpy(weights[:, 1:].copy())  # weight of each label
    return batch


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


def surplus_pads(middle: int, mode: str, max_gap: int, rng: random.Random) -> int:
    """Pads after a middle of `middle` tokens, where inference finds more masks than the gap
    needs (none in a quarter of the rows). uniform: 1 .. max_gap - middle, the first diffusion
    model's recipe, which left most of a gap's positions pads and taught the model to answer pad
    everywhere; engine: up to the smallest gap the engine gives a request
    (`DiffusionSettings`: a single line, a few lines) that holds the middle, as at inference."""
    if rng.random() < 0.25:
        return 0
    if mode == "engine":
        from infill.diffusion.engine import DiffusionSettings

        sizes = (DiffusionSettings.single_line_gap, DiffusionSettings.multi_line_gap)
        return next((size - middle for size in sizes if size >= middle), 0)
    return rng.randint(1, max(1, max_gap - middle))


def diffusion_batch(tokenizer, ids: SpecialIds, docs: DocSampler, rng: random.Random,
                    batch_size: int, seq_len: int, infill_rate: float = 0.75,
                    max_gap: int = 128, eps: float = 0.02,
                    surplus: str = "uniform") -> dict[str, torch.Tensor]:
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
        pads = surplus_pads(len(m), surplus, max_gap, rng)
        row, g0, g1 = diffusion_row(p, m, pads, s, ids, seq_len)
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
                 seed: int, fim_rate: float = 0.9, packages: list[str] | None = None,
                 package_alpha: float = 1.0, pack: bool = False, middle_weight: float = 1.0,
                 surplus: str = "uniform", rename_rate: float = 0.0):
        self.kind, self.texts, self.tokenizer = kind, texts, tokenizer
        self.batch_size, self.seq_len, self.seed, self.fim_rate = batch_size, seq_len, seed, fim_rate
        self.packages, self.package_alpha = packages, package_alpha
        self.pack, self.middle_weight, self.surplus = pack, middle_weight, surplus
        self.rename_rate, self.names = rename_rate, None

    def __iter__(self):
        info = get_worker_info()
        rng = random.Random(self.seed * 1009 + (info.id if info else 0))
        docs = DocSampler(self.texts, self.packages, self.package_alpha)
        ids = SpecialIds.of(self.tokenizer)
        if self.rename_rate:  # per worker: the names to rename to
            self.names = name_pool(self.texts, random.Random(self.seed))
        while True:
            yield self.batch(docs, ids, rng)

    def batch(self, docs: DocSampler, ids: SpecialIds, rng: random.Random):
        if self.kind == "diffusion":
            return diffusion_batch(self.tokenizer, ids, docs, rng, self.batch_size, self.seq_len,
                                   surplus=self.surplus)
        return ar_batch(self.tokenizer, ids, docs, rng, self.batch_size, self.seq_len,
                        self.fim_rate, self.pack, self.middle_weight, self.rename_rate, self.names)


def fixed_batches(kind: str, texts: list[str], tokenizer, batch_size: int, seq_len: int,
                  count: int, seed: int = 1234) -> list[dict[str, torch.Tensor]]:
    """The same held-out batches at every evaluation, so loss curves are comparable.

    AR batches mark their middles (loss weight 2, used only as a marker) so that the loss on
    the gap alone, what infilling depends on, can be reported beside the loss on whole rows.
    """
    stream = BatchStream(kind, texts, tokenizer, batch_size, seq_len, seed,
                         middle_weight=2.0 if kind == "ar" else 1.0)
    rng = random.Random(seed)
    docs, ids = DocSampler(texts), SpecialIds.of(tokenizer)
    return [stream.batch(docs, ids, rng) for _ in range(count)]


def cosine_lr(progress: float, step: int, peak: float, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak over the time budget."""
    warm = min(1.0, (step + 1) / warmup_steps)
    return peak * warm * (0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0))))
