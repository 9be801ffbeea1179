"""Rows of different lengths decoding together over the static batch cache compute what each
computes alone: the same logits as HF, the same greedy tokens as `Decoder` one at a time,
eagerly, padded to row buckets, and through the emulated CUDA-graph sequence."""

import random

import pytest

from infill.batched import decode_batch
from speculative.cache import PrefixKV
from speculative.decode import Decoder
from speculative.static import StaticBatch, StaticModel, batch_cache, kv_cache

from test_static import MODES, close, hf_logits, llama, qwen2, sharp

MODELS = {"llama-gqa": lambda: sharp(llama(seed=20)),
          "qwen2-gqa-biases": lambda: sharp(qwen2(seed=21))}


def prompts(seed=0, count=5):
    rng = random.Random(seed)
    return [rng.choices(range(1, 48), k=rng.randint(1, 90)) for _ in range(count)]


@pytest.mark.parametrize("prefill_tokens", [StaticBatch.PREFILL_TOKENS, 16])
@pytest.mark.parametrize("mode", MODES)
def test_rows_give_the_logits_of_hf_alone(mode, prefill_tokens, monkeypatch):
    """16 prefill tokens: the prompts go in chunks of 5 over the 3 rows, each ending in
    another chunk."""
    monkeypatch.setattr(StaticBatch, "PREFILL_TOKENS", prefill_tokens)
    model = qwen2(seed=22)
    cache = StaticModel(model, **MODES[mode]).rows()
    rows = prompts(1, count=3)
    first = cache.start(rows, room=4)
    for row, logits in zip(rows, first):
        close(logits, hf_logits(model, row)[-1])
    fed = [[5, 6, 7, 8], [9, 10, 11, 12], [1, 2, 3, 4]]
    for i in range(4):
        if i == 2:  # the middle row stops; the others go on
            cache.keep([0, 2])
            rows, fed = [rows[0], rows[2]], [fed[0], fed[2]]
        logits = cache.step([f[i] for f in fed])
        for row, f, got in zip(rows, fed, logits):
            close(got, hf_logits(model, row + f[: i + 1])[-1])


@pytest.mark.parametrize("count", [5, 35])
def test_batch_steps_give_the_logits_of_hf_alone_by_matmul_or_sdpa_attention(count):
    """With matmul attention for up to 32 tokens, 5 rows attend by matmuls, 35 through SDPA."""
    model = qwen2(seed=28, num_key_value_heads=2)
    rows = [p[:12] for p in prompts(7, count=count)]
    reference = [hf_logits(model, row + [7])[-1] for row in rows]
    for mode in MODES.values():
        cache = StaticModel(model, **mode, matmul_attention_tokens=32).rows()
        cache.start(rows, room=1)
        for got, expected in zip(cache.step([7] * len(rows)), reference):
            close(got, expected)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", MODES)
def test_greedy_rows_equal_the_decoder_one_at_a_time(name, mode, monkeypatch):
    model = MODELS[name]()
    stop = {3}
    rows = prompts(2, count=7)
    alone = [Decoder(model, kv=PrefixKV(model)).generate(p, max_new_tokens=n, stop_ids=stop)
             for p, n in zip(rows, [30, 5, 30, 1, 30, 17, 30])]
    engine = StaticModel(model, **MODES[mode])
    monkeypatch.setattr("infill.batched.batch_cache", lambda m: engine.rows())
    got = decode_batch(model, rows, max_new_tokens=[30, 5, 30, 1, 30, 17, 30], stop_ids=stop,
                       stop_rules=[None, None, lambda t: 9 in t, None, None, None, None],
                       temperatures=[0.0] * 7, top_ps=[1.0] * 7, seeds=[0] * 7, pad_id=0)
    rule = [i for i, t in enumerate(alone[2].tokens) if t == 9]
    expected = [(r.tokens, r.forwards) for r in alone]
    if rule:  # the stop rule ends row 2 at its first 9 (kept)
        expected[2] = (alone[2].tokens[: rule[0] + 1], rule[0] + 1)
    assert got == expected
    assert len({len(t) for t, _ in got}) > 2 and any(len(t) == 30 for t, _ in got)
    if mode != "eager":
        assert set(engine.batch.steps) <= set(StaticBatch.BUCKETS)


def test_default_decode_batch_uses_the_static_cache_and_shares_the_model_engine():
    model = sharp(llama(seed=23))
    cache = batch_cache(model)
    assert isinstance(cache, StaticBatch) and cache.engine is kv_cache(model).engine
    rows = prompts(3, count=4)
    single = Decoder(model)  # the model's default cache: the same engine, restored after
    first = single.generate(rows[0], max_new_tokens=12, stop_ids=set())
    got = decode_batch(model, rows, max_new_tokens=[12] * 4, stop_ids=set(),
                       stop_rules=[None] * 4, temperatures=[0.0] * 4, top_ps=[1.0] * 4,
                       seeds=[0] * 4, pad_id=0)
    assert got[0] == (first.tokens, first.forwards)
    again = single.generate(rows[0] + first.tokens[:3], max_new_tokens=6, stop_ids=set())
    assert again.tokens == first.tokens[3:9]


def test_sampled_rows_draw_as_the_decoder_does():
    model = llama(seed=24)
    rows = prompts(4, count=3)
    alone = [Decoder(model, kv=PrefixKV(model)).generate(
        p, max_new_tokens=10, stop_ids=set(), temperature=1.0, top_p=0.9, seed=i).tokens
        for i, p in enumerate(rows)]
    got = decode_batch(model, rows, max_new_tokens=[10] * 3, stop_ids=set(),
                       stop_rules=[None] * 3, temperatures=[1.0] * 3, top_ps=[0.9] * 3,
                       seeds=[0, 1, 2], pad_id=0)
    assert [t for t, _ in got] == alone


def test_unsupported_or_failing_static_path_falls_back_to_hf(monkeypatch):
    dynamic = sharp(llama(seed=25, rope_parameters={"rope_type": "dynamic", "factor": 2.0,
                                                   "rope_theta": 1e4}))
    assert batch_cache(dynamic) is None
    model = sharp(llama(seed=26))
    rows = prompts(5, count=3)
    args = dict(max_new_tokens=[8] * 3, stop_ids=set(), stop_rules=[None] * 3,
                temperatures=[0.0] * 3, top_ps=[1.0] * 3, seeds=[0] * 3, pad_id=0)
    expected = decode_batch(model, rows, **args)

    def broken(self, tokens):
        raise RuntimeError("no graph today")

    monkeypatch.setattr(StaticBatch, "step", broken)
    assert decode_batch(model, rows, **args) == expected  # through HF's forward
    monkeypatch.setenv("SPECULATIVE_STATIC", "0")
    assert batch_cache(model) is None


def test_a_failed_capture_runs_the_rows_eagerly(monkeypatch):
    model = sharp(qwen2(seed=27))
    engine = StaticModel(model, **MODES["emulated-graphs"])
    cache = engine.rows()

    def fail(self, pool):
        raise RuntimeError("capture failed")

    from speculative import static
    monkeypatch.setattr(static._RowStep, "capture", fail)
    rows = prompts(6, count=3)
    first = cache.start(rows, room=2)
    logits = cache.step(first.argmax(-1).tolist())
    assert cache.graphs is False and all(s.graph is None for s in cache.steps.values())
    for row, token, got in zip(rows, first.argmax(-1).tolist(), logits):
        close(got, hf_logits(model, row + [token])[-1])
