"""Both engines on the shipped models, through the public `infill.complete` path."""

import threading
from dataclasses import replace

import pytest

import infill
from infill.engines import Engines, ModelConfig
from infill.request import CancelToken

PREFIX = "def mean(values):\n    total = sum(values)\n    return "
SUFFIX = "\n\n\ndef variance(values):\n    m = mean(values)\n"


@pytest.fixture(scope="module")
def engines():
    return Engines(ModelConfig(device="cpu"))


def special_tokens(engines):
    tok = engines.ar.tokenizer
    return [t for t in tok.all_special_tokens] + ["<|prefix|>", "<|suffix|>", "<|middle|>"]


@pytest.mark.parametrize("engine", ["speculative", "diffusion"])
def test_greedy_is_deterministic_and_clean(engines, engine):
    request = lambda: infill.InfillRequest(prefix=PREFIX, suffix=SUFFIX, engine=engine,
                                           max_tokens=16, language="python")
    first, second = engines.complete(request())[0], engines.complete(request())[0]
    assert first.text == second.text
    assert first.engine == engine and first.forwards >= 1
    assert not any(t in first.text for t in special_tokens(engines))
    assert "\n" not in first.text  # a cursor with code on the next line: one line


@pytest.mark.parametrize("engine", ["speculative", "diffusion"])
def test_sampling_is_reproducible_with_a_seed(engines, engine):
    def sample(seed):
        return engines.complete(infill.InfillRequest(
            prefix=PREFIX, suffix=SUFFIX, engine=engine, max_tokens=12, temperature=1.0,
            seed=seed))[0].text

    assert sample(3) == sample(3)


@pytest.mark.parametrize("engine", ["speculative", "diffusion"])
def test_candidates_are_different_samples_valid_first(engines, engine):
    def request(**kw):
        return infill.InfillRequest(prefix=PREFIX, suffix=SUFFIX, engine=engine, max_tokens=12,
                                    language="python", seed=1, **kw)

    sampled = engines.complete(request(temperature=1.0, candidates=4))
    texts = [c.text for c in sampled]
    assert 2 <= len(texts) <= 4 and len(set(texts)) == len(texts)  # deduplicated
    assert [c.valid for c in sampled] == sorted((c.valid for c in sampled), reverse=True)
    assert texts == [c.text for c in engines.complete(request(temperature=1.0, candidates=4))]
    if engine == "speculative":  # the first seed's candidate is the single request's sample
        assert engines.complete(request(temperature=1.0))[0].text in texts
    assert len(engines.complete(request(candidates=4))) == 1  # greedy: one answer


@pytest.mark.parametrize("engine", ["speculative", "diffusion"])
def test_a_cancelled_request_raises(engines, engine):
    token = CancelToken()
    token.cancel()
    with pytest.raises(infill.Cancelled):
        engines.complete(infill.InfillRequest(prefix=PREFIX, suffix=SUFFIX, engine=engine,
                                              cancel=token))


def test_cancel_from_another_thread_stops_a_running_decode(engines):
    token = CancelToken()
    steps = []
    original = engines.ar.model.forward

    def counting_forward(*args, **kwargs):
        steps.append(1)
        if len(steps) == 3:
            threading.Thread(target=token.cancel).start()
        return original(*args, **kwargs)

    engines.ar.model.forward = counting_forward
    try:
        with pytest.raises(infill.Cancelled):
            engines.complete(infill.InfillRequest(prefix=PREFIX, suffix="", engine="speculative",
                                                  max_tokens=64, multiline=True, cancel=token))
    finally:
        del engines.ar.model.forward
    assert len(steps) <= 5


def test_a_long_file_is_windowed_to_the_context(engines):
    prefix = "".join(f"x{i} = {i}\n" for i in range(20000))
    c = engines.complete(infill.InfillRequest(prefix=prefix, suffix="", engine="speculative",
                                              max_tokens=8))[0]
    assert c.forwards >= 1


def test_empty_prefix_and_suffix(engines):
    for engine in ("speculative", "diffusion"):
        c = engines.complete(infill.InfillRequest(prefix="", suffix="", engine=engine,
                                                  max_tokens=8))[0]
        assert isinstance(c.text, str)


def test_auto_routes_by_the_text_after_the_cursor(engines):
    inside = engines.complete(infill.InfillRequest(prefix="print(", suffix=")\n", max_tokens=8))
    at_end = engines.complete(infill.InfillRequest(prefix="x = ", suffix="\n", max_tokens=8))
    assert inside[0].engine == "diffusion" and at_end[0].engine == "speculative"


def test_the_auto_drafter_adds_the_draft_model_only_when_one_is_named():
    from infill.models.loading import DEFAULT_MODELS
    from speculative.drafters import CombinedDrafter, NgramDrafter

    assert isinstance(Engines(ModelConfig(device="cpu")).drafter, NgramDrafter)
    named = Engines(ModelConfig(device="cpu", draft=str(DEFAULT_MODELS["draft"])))
    assert isinstance(named.drafter, CombinedDrafter)
    shipped_pair = Engines(ModelConfig(device="cpu", drafter="combined"))
    assert isinstance(shipped_pair.drafter, CombinedDrafter)  # still there when asked for


def test_the_diffusion_gap_is_the_ar_models_completion_length(engines):
    from infill.diffusion import engine as diffusion_engine

    request = infill.InfillRequest(prefix=PREFIX, suffix=SUFFIX, engine="diffusion",
                                   max_tokens=16, language="python")
    gap = diffusion_engine.ar_gap(engines.ar, engines.diffusion, request, False)
    completion = engines.complete(request)[0]
    assert gap >= 2 and completion.tokens == gap  # an exact gap: no pad to collapse


def test_the_pad_length_sizes_the_gap_without_the_ar_model():
    engines = Engines(ModelConfig(device="cpu", diffusion_length="pad"))
    completion = engines.complete(infill.InfillRequest(prefix=PREFIX, suffix=SUFFIX,
                                                       engine="diffusion", max_tokens=64))[0]
    assert engines._ar is None  # never loaded
    # a line's 24 masks, the surplus collapsed into pads; one token per forward
    assert 0 < completion.tokens < 24 and completion.forwards >= completion.tokens


def test_an_unknown_diffusion_length_is_refused():
    with pytest.raises(ValueError, match="unknown diffusion length 'oracle': use one of ar, pad"):
        ModelConfig(diffusion_length="oracle")


def test_both_engines_on_one_request_run_the_ar_model_once(monkeypatch):
    """An Invoked request asks both engines: the diffusion engine sizes its gap from the AR
    engine's greedy completion of the same request rather than decoding it again."""
    from infill import autoregressive

    engines = Engines(ModelConfig(device="cpu"))
    calls = []
    original = autoregressive.generate
    monkeypatch.setattr(autoregressive, "generate",
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    request = infill.InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=16)
    ar = engines.complete(replace(request, engine="speculative"))[0]
    diffusion = engines.complete(replace(request, engine="diffusion"))[0]
    assert len(calls) == 1 and ar.tokens >= 1 and diffusion.forwards >= 1
    engines.complete(replace(request, engine="diffusion", prefix=PREFIX + "m"))
    assert len(calls) == 2  # another request: another AR completion
