"""The masked-diffusion sampler on fake models whose logits are known: Dream's logit shift,
committed tokens that stay, banned ids, seeds, cancellation."""

from types import SimpleNamespace

import pytest
import torch

from infill.diffusion.sampler import apart_best, denoise, tokens_per_step
from speculative.decode import Cancelled

VOCAB = 40
MASK = 39
PREFIX = [1, 2, 3]
SUFFIX = [4, 5]
GAP = 4
START, END = len(PREFIX), len(PREFIX) + GAP


def canvas() -> torch.Tensor:
    return torch.tensor([PREFIX + [MASK] * GAP + SUFFIX])


class PositionModel(torch.nn.Module):
    """Logits at position i put all their weight on token 10 + i, and none on 10 + i + 1."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, input_ids):
        self.calls.append(input_ids.clone())
        b, n = input_ids.shape
        logits = torch.zeros(b, n, VOCAB)
        for i in range(n):
            logits[:, i, 10 + i] = 20.0
        return SimpleNamespace(logits=logits)


class RandomModel(torch.nn.Module):
    """Fresh random logits at every call (as a real model's change with the canvas), with the
    mask id and `favoured` ids made the most likely tokens of all."""

    def __init__(self, favoured=(), seed=0, batch=1):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)
        self.favoured = list(favoured)
        self.calls = []

    def forward(self, input_ids):
        self.calls.append(input_ids.clone())
        logits = torch.randn(*input_ids.shape, VOCAB, generator=self.generator) * 2
        logits[..., MASK] = 50.0
        for i in self.favoured:
            logits[..., i] = 40.0
        return SimpleNamespace(logits=logits)


class FixedModel(torch.nn.Module):
    """The same random logits at every call: sampling is the only source of randomness."""

    def __init__(self):
        super().__init__()
        self.logits = torch.randn(1, len(PREFIX) + GAP + len(SUFFIX), VOCAB,
                                  generator=torch.Generator().manual_seed(1))

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.logits.clone())


@pytest.mark.parametrize("steps", [GAP, 2, 1])
def test_without_shift_position_i_comes_from_the_logits_at_i(steps):
    filled, forwards = denoise(PositionModel(), canvas(), START, END, mask_id=MASK, steps=steps,
                               shift_logits=False)
    assert filled[0].tolist() == [10 + i for i in range(START, END)]
    assert forwards == steps


@pytest.mark.parametrize("steps", [GAP, 2, 1])
def test_dream_shift_fills_position_i_from_the_logits_at_i_minus_1(steps):
    filled, forwards = denoise(PositionModel(), canvas(), START, END, mask_id=MASK, steps=steps,
                               shift_logits=True)
    assert filled[0].tolist() == [10 + i - 1 for i in range(START, END)]
    assert forwards == steps


@pytest.mark.parametrize("shift", [False, True])
def test_shift_with_parallel_commits(shift):
    """With a confidence threshold every confident position is committed in one forward; each
    still comes from its own (shifted) logits."""
    filled, forwards = denoise(PositionModel(), canvas(), START, END, mask_id=MASK,
                               threshold=0.5, shift_logits=shift)
    assert filled[0].tolist() == [10 + i - shift for i in range(START, END)]
    assert forwards == 1


def test_shift_at_the_start_of_the_canvas():
    """A gap at position 0 has no logits before it; Dream's own code reuses position 0's."""
    c = torch.tensor([[MASK, MASK, 4]])
    filled, _ = denoise(PositionModel(), c, 0, 2, mask_id=MASK, steps=2, shift_logits=True)
    assert filled[0].tolist() == [10, 10]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("steps", [GAP, 2])
def test_committed_tokens_never_change(temperature, steps):
    model = RandomModel(seed=3)
    original = canvas()
    filled, forwards = denoise(model, original, START, END, mask_id=MASK, steps=steps,
                               temperature=temperature, seed=5)
    assert forwards == len(model.calls) == steps
    assert original.tolist() == canvas().tolist()  # the caller's canvas is left alone
    states = [c[0].tolist() for c in model.calls] + [PREFIX + filled[0].tolist() + SUFFIX]
    per_step = tokens_per_step(GAP, steps)
    for step, (before, after) in enumerate(zip(states, states[1:])):
        assert before[:START] == after[:START] == PREFIX and before[END:] == after[END:] == SUFFIX
        for b, a in zip(before[START:END], after[START:END]):
            assert b == MASK or a == b  # a committed token stays
        newly = sum(b == MASK and a != MASK for b, a in zip(before, after))
        assert newly == per_step[step]
    assert MASK not in filled[0].tolist()


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.5])
def test_output_never_holds_the_mask_or_a_banned_id(temperature):
    banned = {0, 7, 8}
    for seed in range(4):
        filled, _ = denoise(RandomModel(favoured=banned, seed=seed), canvas(), START, END,
                            mask_id=MASK, steps=2, banned_ids=banned, temperature=temperature,
                            seed=seed)
        tokens = set(filled[0].tolist())
        assert MASK not in tokens and not tokens & banned


def test_a_seed_gives_the_same_sample_twice():
    def sample(seed):
        return denoise(FixedModel(), canvas(), START, END, mask_id=MASK, steps=2,
                       temperature=1.0, seed=seed)[0][0].tolist()

    assert sample(11) == sample(11)
    assert len({tuple(sample(s)) for s in range(8)}) > 1  # and the seed is what varies it


def test_greedy_ignores_the_seed():
    def run(seed):
        return denoise(FixedModel(), canvas(), START, END, mask_id=MASK, steps=2,
                       temperature=0.0, seed=seed)[0][0].tolist()

    assert run(1) == run(2) == run(None)


class ConfidenceModel(torch.nn.Module):
    """The same logits at every call: gap position i favours token 20 + START + i with the
    given strength; records the gap it sees at each call."""

    def __init__(self, strengths):
        super().__init__()
        self.strengths, self.seen = strengths, []

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, VOCAB)
        for i, strength in zip(range(START, END), self.strengths):
            logits[:, i, 20 + i] = strength
        self.seen.append(input_ids[0, START:END].tolist())
        return SimpleNamespace(logits=logits)

    def committed(self) -> list[list[int]]:
        """The gap positions already committed at each call."""
        return [[i for i, t in enumerate(s) if t != MASK] for s in self.seen]


def test_most_confident_position_is_committed_first():
    model = ConfidenceModel((1.0, 9.0, 3.0, 5.0))
    denoise(model, canvas(), START, END, mask_id=MASK, steps=GAP)
    assert model.committed() == [[], [1], [1, 3], [1, 2, 3]]


@pytest.mark.parametrize("per_forward, order", [
    (1, [[], [1], [1, 3], [1, 2, 3]]),
    (2, [[], [1, 3]]),
    (4, [[]]),
])
def test_per_forward_commits_the_k_most_confident_whatever_their_confidence(per_forward, order):
    """No prediction here reaches a threshold of 0.99; k per forward still commits k of them,
    the most confident first, so the gap of 4 takes ceil(4 / k) forwards."""
    model = ConfidenceModel((1.0, 4.0, 2.0, 3.0))
    filled, forwards = denoise(model, canvas(), START, END, mask_id=MASK, threshold=0.99,
                               per_forward=per_forward)
    assert model.committed() == order
    assert forwards == -(-GAP // per_forward)
    assert filled[0].tolist() == [20 + i for i in range(START, END)]


def test_the_first_forward_spaced_commits_no_two_neighbours_and_the_second_the_rest():
    """Neighbours predicted at once do not see each other (`= = =`): with spaced_first the
    first forward takes 1 (the most confident) and 3 (not next to it), no more; the second
    forward, every position left having a committed neighbour, takes the rest."""
    model = ConfidenceModel((1.0, 4.0, 2.0, 3.0))
    filled, forwards = denoise(model, canvas(), START, END, mask_id=MASK, per_forward=GAP,
                               spaced_first=True)
    assert model.committed() == [[], [1, 3]] and forwards == 2
    assert filled[0].tolist() == [20 + i for i in range(START, END)]


def test_apart_best_takes_the_most_confident_first_and_never_a_closed_position():
    inf = float("-inf")  # positions already committed
    confidence = torch.tensor([[0.9, 0.8, 0.1, 0.7, 0.95, inf, 0.2],
                               [inf, inf, inf, inf, inf, inf, 0.3]])
    chosen = apart_best(confidence, 3)
    # row 0: 4 (0.95), then 0 (0.9; 3 is next to 4), then 6 (0.2 beats 2's 0.1);
    # row 1: its one open position, though 3 were allowed
    assert [torch.nonzero(row).flatten().tolist() for row in chosen] == [[0, 4, 6], [6]]
    assert torch.nonzero(apart_best(confidence, 1)[0]).flatten().tolist() == [4]


def test_a_tiny_top_p_keeps_only_the_most_likely_token_at_any_temperature():
    model = FixedModel()
    greedy, _ = denoise(model, canvas(), START, END, mask_id=MASK)
    for seed in range(3):
        hot, _ = denoise(model, canvas(), START, END, mask_id=MASK, temperature=5.0,
                         top_p=1e-6, seed=seed)
        assert hot.tolist() == greedy.tolist()
    wide = {tuple(denoise(model, canvas(), START, END, mask_id=MASK, temperature=5.0,
                          seed=seed)[0][0].tolist()) for seed in range(3)}
    assert len(wide) > 1  # without the nucleus, the samples differ


def test_batch_rows_are_filled_independently():
    batch = torch.cat([canvas(), canvas()])
    filled, _ = denoise(PositionModel(), batch, START, END, mask_id=MASK, steps=2)
    assert filled.tolist() == [[10 + i for i in range(START, END)]] * 2


def test_cancellation_between_steps():
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2

    model = PositionModel()
    with pytest.raises(Cancelled):
        denoise(model, canvas(), START, END, mask_id=MASK, steps=GAP, is_cancelled=cancelled)
    assert len(model.calls) == 2


def test_tokens_per_step():
    assert tokens_per_step(10, 4) == [3, 3, 2, 2]
    assert tokens_per_step(4, 4) == [1, 1, 1, 1]
    assert sum(tokens_per_step(24, 7)) == 24


PAD = 30


class PadProfile(PositionModel):
    """PositionModel with a pad whose probability rises along the gap, as a trained model's
    does (the chance that the content has ended by then): `pads[k]` is its logit at gap
    position k; the content token keeps its logit of 20 but spreads over nothing else."""

    def __init__(self, pads):
        super().__init__()
        self.pads = pads

    def forward(self, input_ids):
        out = super().forward(input_ids)
        for k, value in enumerate(self.pads):
            out.logits[:, START + k, PAD] = value
        return out


def test_the_first_forward_ends_the_content_where_the_pad_reaches_the_threshold():
    # position 1's pad beats its content token (logit 20.5 against 20: 62% against 38%), as a
    # per-position argmax would see it; under the 0.7 threshold the content goes on
    model = PadProfile([-9.0, 20.5, 25.0, 25.0])
    filled, forwards = denoise(model, canvas(), START, END, mask_id=MASK, collapse_id=PAD,
                               pad_threshold=0.7)
    assert filled.tolist() == [[10 + START, 10 + START + 1, PAD, PAD]]
    assert forwards == 2  # one per content token: the pads cost none
    shorter, forwards = denoise(model, canvas(), START, END, mask_id=MASK, collapse_id=PAD,
                                pad_threshold=0.5)
    assert shorter.tolist() == [[10 + START, PAD, PAD, PAD]] and forwards == 1


def test_masked_positions_before_committed_content_are_filled_with_content():
    # a gap denoised again (syntax-guided remasking) with content at its third position: the
    # masks before it are content however likely the pad, the one after it may end the gap
    model = PadProfile([25.0, 25.0, 25.0, 25.0])
    row = canvas()
    row[0, START + 2] = 7
    filled, _ = denoise(model, row, START, END, mask_id=MASK, collapse_id=PAD)
    assert filled.tolist() == [[10 + START, 10 + START + 1, 7, PAD]]


def test_a_gap_whose_first_position_is_a_pad_stays_empty():
    model = PadProfile([25.0, 25.0, 25.0, 25.0])
    filled, forwards = denoise(model, canvas(), START, END, mask_id=MASK, collapse_id=PAD)
    assert filled.tolist() == [[PAD] * GAP] and forwards == 1


@pytest.mark.parametrize("threshold", [None, 0.9])
def test_batch_rows_end_their_content_independently(threshold):
    model = PadProfile([-9.0, 25.0, 25.0, 25.0])
    rows = torch.cat([canvas(), canvas()])
    rows[1, START] = 10 + START + 5  # row 1 arrives with its first token committed
    rows[1, START + 2] = 10 + START + 2  # and a content token after a still masked position
    filled, _ = denoise(model, rows, START, END, mask_id=MASK, collapse_id=PAD,
                        threshold=threshold)
    assert filled.tolist() == [[10 + START, PAD, PAD, PAD],
                               [10 + START + 5, 10 + START + 1, 10 + START + 2, PAD]]


class RisingConfidence(PositionModel):
    """PositionModel whose confidence rises along the gap: low-confidence remasking alone would
    fill it right to left."""

    def forward(self, input_ids):
        out = super().forward(input_ids)
        for k in range(GAP):
            out.logits[:, START + k, 10 + START + k] = 2.0 + 2.0 * k
        return out


def commit_order(model) -> list[int]:
    """Gap positions in the order the calls saw them filled."""
    order = []
    for before, after in zip(model.calls, model.calls[1:] + [None]):
        if after is None:
            break
        order += [k for k in range(GAP) if before[0, START + k] == MASK != after[0, START + k]]
    return order


@pytest.mark.parametrize("block, expected", [(None, [3, 2, 1]), (2, [1, 0, 3]), (1, [0, 1, 2])])
def test_semi_autoregressive_blocks_fill_the_gap_left_to_right(block, expected):
    model = RisingConfidence()
    filled, forwards = denoise(model, canvas(), START, END, mask_id=MASK, block=block)
    assert filled.tolist() == [[10 + i for i in range(START, END)]] and forwards == GAP
    assert commit_order(model) == expected  # the last commit is never seen by a call
