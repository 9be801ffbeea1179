"""Batched generation computes what one request at a time computes."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infill.batched import BatchedEngines, buckets
from infill.engines import Engines, ModelConfig
from infill.request import InfillRequest

from batch_cases import code_tasks


def requests(engine: str, count: int, max_tokens: int = 20, **kwargs) -> list[InfillRequest]:
    return [InfillRequest(prefix=t["prompt"], suffix=t["suffix"], engine=engine,
                          max_tokens=max_tokens, multiline=bool(i % 2), **kwargs)
            for i, t in enumerate(code_tasks(count, seed=3, longest=400))]


def batched(engines, reqs, batch_size=3, gaps=None):
    """The completions in the requests' order; `gaps`, a list, gets each diffusion batch's
    gap sizes."""
    results = {}
    engine = BatchedEngines(engines, batch_size=batch_size)
    if gaps is not None:
        run = engine._diffusion_batch
        engine._diffusion_batch = lambda jobs: gaps.append({j.gap for j in jobs}) or run(jobs)
    for batch in engine.complete_many(reqs):
        assert len(batch) <= batch_size
        results.update(batch)
    assert sorted(results) == list(range(len(reqs)))
    return [results[i] for i in range(len(reqs))]


@pytest.mark.parametrize("engine,length", [("speculative", "ar"), ("diffusion", "ar"),
                                           ("diffusion", "pad")])
def test_greedy_batched_equals_one_at_a_time(tiny_engines, engine, length):
    engines = tiny_engines
    if length != engines.config.diffusion_length:
        engines = Engines(replace(tiny_engines.config, diffusion_length=length))
    reqs = requests(engine, 8, max_tokens=20 if engine == "speculative" else 10)
    if engine == "diffusion":  # the tiny AR model writes to the limit: gaps of 4 to 11
        reqs = [replace(r, max_tokens=4 + i) for i, r in enumerate(reqs)]
    alone = [engines.complete(r)[0] for r in reqs]
    gaps = []
    together = batched(engines, reqs, gaps=gaps)
    assert [c.text for c in together] == [c.text for c in alone]
    if length == "ar" and engine == "diffusion":  # gaps of different sizes shared a batch
        assert any(len(sizes) > 1 for sizes in gaps)
    assert [c.tokens for c in together] == [c.tokens for c in alone]
    assert any(c.text for c in alone) and len({c.text for c in alone}) > 2  # not vacuous
    assert all(c.engine == engine and c.forwards >= 1 for c in together)
    if engine == "diffusion":  # the same gaps and schedules: the same forwards either way
        assert [c.forwards for c in together] == [c.forwards for c in alone]


def test_sampled_ar_rows_draw_as_the_single_path_does(tiny_models):
    """Without a drafter, the single path draws each token from the request's own generator;
    a batched row does the same, so seeded samples are equal, whatever the batch."""
    engines = Engines(ModelConfig(target=str(tiny_models["target"]), device="cpu", drafter="none"))
    reqs = [InfillRequest(prefix=r.prefix, suffix=r.suffix, engine="speculative", max_tokens=12,
                          multiline=True, temperature=1.0, seed=i)
            for i, r in enumerate(requests("speculative", 5))]
    alone = [engines.complete(r)[0].text for r in reqs]
    assert [c.text for c in batched(engines, reqs, batch_size=5)] == alone
    assert len(set(alone)) > 1


def test_a_failing_row_fails_alone(tiny_engines, monkeypatch):
    reqs = requests("speculative", 4)
    engine = BatchedEngines(tiny_engines, batch_size=4)
    original = engine._ar_batch

    def fragile(batch):
        if any(j.index == 2 for j in batch):
            if len(batch) == 1:
                raise RuntimeError("boom")
            raise RuntimeError("batch boom")
        return original(batch)

    monkeypatch.setattr(engine, "_ar_batch", fragile)
    results = dict(r for batch in engine.complete_many(reqs) for r in batch)
    assert isinstance(results[2], RuntimeError)
    assert all(not isinstance(results[i], Exception) for i in (0, 1, 3))


def test_a_row_whose_gap_cannot_be_sized_fails_alone(tiny_engines, monkeypatch):
    import infill.batched as batched_module

    reqs = requests("diffusion", 4, max_tokens=8)
    engine = BatchedEngines(tiny_engines, batch_size=4)
    original = batched_module.decode_batch
    fragile_prompt = []

    def fragile(model, prompts, **kwargs):
        if fragile_prompt[0] in prompts:
            raise RuntimeError("boom")
        return original(model, prompts, **kwargs)

    fragile_prompt.append(batched_module.autoregressive.build_prompt(
        tiny_engines.ar, reqs[2].prefix, reqs[2].suffix, reqs[2].max_tokens))
    monkeypatch.setattr(batched_module, "decode_batch", fragile)
    results = dict(r for batch in engine.complete_many(reqs) for r in batch)
    assert isinstance(results[2], RuntimeError)
    assert all(not isinstance(results[i], Exception) for i in (0, 1, 3))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), max_size=40), st.integers(1, 6), st.integers(1, 120))
def test_buckets_partition_sorted_and_within_limits(sizes, max_rows, max_tokens):
    groups = list(buckets(list(range(len(sizes))), lambda i: sizes[i], max_rows, max_tokens))
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(len(sizes)))
    assert [sizes[i] for i in flat] == sorted(sizes)
    for g in groups:
        assert len(g) <= max_rows
        assert len(g) == 1 or len(g) * max(sizes[i] for i in g) <= max_tokens


@pytest.mark.parametrize("graphs", [None, "emulate"])
def test_greedy_ar_batches_run_on_the_static_cache(tiny_engines, monkeypatch, graphs):
    """The tiny target is a Llama: batched rows decode over the static batch cache (never the
    HF fallback), eagerly and through the emulated CUDA-graph steps, padded to row buckets."""
    from infill import batched as module
    from speculative.static import StaticModel

    def no_fallback(*args, **kwargs):
        raise AssertionError("HF fallback used")

    monkeypatch.setattr(module, "_PaddedRows", no_fallback)
    if graphs:
        engine = StaticModel(tiny_engines.ar.model, graphs=graphs, min_capacity=64)
        monkeypatch.setattr(module, "batch_cache", lambda model: engine.rows())
    reqs = requests("speculative", 7)
    alone = [tiny_engines.complete(r)[0] for r in reqs]
    together = batched(tiny_engines, reqs, batch_size=7)
    assert [c.text for c in together] == [c.text for c in alone]
    assert [c.tokens for c in together] == [c.tokens for c in alone]
    if graphs:
        assert set(engine.batch.steps) <= {1, 2, 4, 8} and engine.batch.steps
