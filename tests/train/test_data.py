import random

import pytest

from infill.train.data import (IGNORE, DocSampler, SpecialIds, ar_batch, diffusion_batch,
                               diffusion_row, fim_row, surplus_pads)
from infill.train.spans import SAMPLERS, sample_span, window
from infill.train.tokenizer import train_tokenizer

CODE = '''import os


def walk(root):
    """Yield files below root."""
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            yield from walk(path)
        else:
            yield path


class Counter:
    def __init__(self):
        self.count = 0

    def add(self, n=1):
        self.count += n
        return self.count
'''
IDS = SpecialIds(end=0, pad=1, mask=2, prefix=3, suffix=4, middle=5)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([CODE] * 20, vocab_size=300)


def test_every_span_kind_gives_a_valid_character_range():
    rng = random.Random(0)
    for name, sampler in SAMPLERS.items():
        for _ in range(50):
            span = sampler(CODE, rng)
            if span is None:
                continue
            start, end = span
            assert 0 <= start <= end <= len(CODE), name
            if name == "line":
                assert "\n" not in CODE[start:end] and CODE[start:end].strip()
            if name == "empty":
                assert start == end


def test_spans_cut_inside_words_sometimes():
    rng = random.Random(1)
    inside_word = 0
    for _ in range(300):
        start, _ = sample_span(CODE, rng)
        if 0 < start < len(CODE) and CODE[start - 1].isalnum() and CODE[start].isalnum():
            inside_word += 1
    assert inside_word > 0


def test_window_starts_and_ends_on_line_boundaries():
    rng = random.Random(2)
    text = CODE * 20
    for _ in range(20):
        w = window(text, rng, 300)
        assert len(w) <= 300 and w.endswith("\n")


def test_fim_row_keeps_the_whole_middle_and_the_text_nearest_the_gap():
    prefix, suffix, middle = list(range(100, 160)), list(range(200, 260)), [7, 8, 9]
    row = fim_row(prefix, suffix, middle, IDS, length=40)
    assert len(row) <= 40
    assert row[0] == IDS.prefix
    p_end = row.index(IDS.suffix)
    s_end = row.index(IDS.middle)
    assert row[1:p_end] == prefix[len(prefix) - (p_end - 1):]  # the end of the prefix
    assert row[p_end + 1:s_end] == suffix[: s_end - p_end - 1]  # the start of the suffix
    assert row[s_end + 1:] == middle + [IDS.end]


def test_diffusion_row_puts_surplus_pads_after_the_middle():
    row, g0, g1 = diffusion_row([10, 11, 12], [20, 21], 3, [30, 31], IDS, length=16)
    assert row == [10, 11, 12, 20, 21, 1, 1, 1, 30, 31]
    assert (g0, g1) == (3, 8)


def test_ar_batch_labels_are_the_next_tokens_and_padding_is_ignored(tokenizer):
    rng = random.Random(3)
    batch = ar_batch(tokenizer, SpecialIds.of(tokenizer), DocSampler([CODE]), rng, 4, 128, 1.0)
    inputs, labels = batch["input_ids"], batch["labels"]
    keep = labels != IGNORE
    assert keep.any()
    assert (inputs[:, 1:][keep[:, :-1]] == labels[:, :-1][keep[:, :-1]]).all()
    assert (inputs[0] == SpecialIds.of(tokenizer).prefix).sum() == 1


def test_diffusion_batch_masks_only_inside_the_maskable_region(tokenizer):
    ids = SpecialIds.of(tokenizer)
    batch = diffusion_batch(tokenizer, ids, DocSampler([CODE]), random.Random(4), 8, 128)
    masked = batch["input_ids"] == ids.mask
    assert (masked == (batch["labels"] != IGNORE)).all()
    assert masked.any(dim=1).all()
    assert (batch["weights"] > 0).all()


def test_package_alpha_flattens_the_share_of_a_big_package():
    texts = ["a" * 9000] + ["b" * 1000]  # one big package, one small one
    packages = ["big", "small"]
    rng = random.Random(0)
    plain = DocSampler(texts, packages, 1.0)
    flat = DocSampler(texts, packages, 0.0)  # every package equally likely
    share_plain = sum(plain(rng) == texts[1] for _ in range(4000)) / 4000
    share_flat = sum(flat(rng) == texts[1] for _ in range(4000)) / 4000
    assert abs(share_plain - 0.1) < 0.03
    assert abs(share_flat - 0.5) < 0.05


def test_packed_rows_hold_several_examples_each_ending_in_the_end_token(tokenizer):
    ids = SpecialIds.of(tokenizer)
    batch = ar_batch(tokenizer, ids, DocSampler([CODE]), random.Random(5), 16, 256, 1.0, pack=True)
    starts = (batch["input_ids"] == ids.prefix).sum(1)
    assert starts.max() > 1  # some rows pack more than one FIM example
    for row, n in zip(batch["input_ids"], starts):
        assert (row == ids.end).sum() >= n - 1  # every example but maybe the last one ended


def test_middle_weight_marks_exactly_the_middle_and_its_end_token(tokenizer):
    ids = SpecialIds.of(tokenizer)
    batch = ar_batch(tokenizer, ids, DocSampler([CODE]), random.Random(6), 4, 256, 1.0,
                     middle_weight=3.0)
    inputs, labels, weights = batch["input_ids"], batch["labels"], batch["loss_weights"]
    for row, label_row, weight_row in zip(inputs, labels, weights):
        middle_at = int((row == ids.middle).nonzero()[0])
        heavy = (weight_row == 3.0).nonzero().flatten().tolist()
        # the labels after <middle>: the middle's tokens, then the end token
        assert heavy[0] == middle_at
        assert int(label_row[heavy[-1]]) == ids.end
        assert heavy == list(range(heavy[0], heavy[-1] + 1))


def test_engine_surplus_fills_a_gap_to_the_size_the_engine_gives_it():
    """--surplus engine: a middle plus its pads is a gap the diffusion engine would make (24
    masks for a line, 64 for a few lines), or the bare middle (a quarter of the rows, and
    middles longer than any gap)."""
    from infill.diffusion.engine import DiffusionSettings

    sizes = {DiffusionSettings.single_line_gap, DiffusionSettings.multi_line_gap}
    rng = random.Random(0)
    totals = [(m, m + surplus_pads(m, "engine", 128, rng)) for m in range(1, 100) for _ in range(8)]
    assert all(total in sizes or total == m for m, total in totals)
    assert {total for m, total in totals if m <= 24} >= {24} and max(t for _, t in totals) >= 64
    share_bare = sum(total == m for m, total in totals if m < 24) / sum(m < 24 for m, _ in totals)
    assert 0.1 < share_bare < 0.4
    # the shipped model's recipe: up to max_gap, whatever the engine does
    uniform = [surplus_pads(5, "uniform", 128, rng) for _ in range(200)]
    assert max(uniform) > 64 and min(uniform) == 0
