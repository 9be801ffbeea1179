"""The diffusion engine's canvas of one shape per long document, and the forward through
captured graphs (emulated on the CPU: the same buffers and cache, run eagerly)."""

import pytest
import torch

from infill.diffusion import engine as diffusion_engine
from infill.diffusion import graphs
from infill.diffusion.graphs import GraphedModel
from infill.models.loading import load_diffusion


@pytest.fixture(scope="module")
def dm(infill_diffusion):
    return load_diffusion(infill_diffusion, device="cpu")


def long_document(lines: int) -> tuple[str, str]:
    body = "".join(f"def function_{i}(value):\n    return value * {i}\n\n" for i in range(lines))
    return body, "\n" + body.replace("function_", "other_")


@pytest.mark.parametrize("lines", [40, 41, 57])
def test_a_long_document_fills_the_context_exactly_and_keeps_the_text_at_the_gap(dm, lines):
    prefix, suffix = long_document(lines)
    canvas, start = diffusion_engine.build_canvas(dm, prefix, suffix, gap=24)
    assert len(canvas) == dm.context
    assert canvas[start:start + 24] == [dm.mask_id] * 24
    near = diffusion_engine.encode(dm, prefix[-200:])
    assert canvas[start - 10:start] == near[-10:]  # the prefix's end, where the gap starts
    assert canvas[start + 24:start + 34] == diffusion_engine.encode(dm, suffix[:200])[:10]


def test_a_short_document_is_kept_whole(dm):
    canvas, start = diffusion_engine.build_canvas(dm, "x = 1\n", "\ny = 2\n", gap=8)
    assert diffusion_engine.encode(dm, "x = 1\n") == canvas[:start]
    assert diffusion_engine.encode(dm, "\ny = 2\n") == canvas[start + 8:]


def test_graphed_forward_gives_the_models_logits_and_keeps_one_graph_per_shape(dm, monkeypatch):
    monkeypatch.setattr(graphs, "MAX_GRAPHS", 2)
    graphed = GraphedModel(dm.model, emulate=True)
    generator = torch.Generator().manual_seed(0)
    for length in (30, 40, 30, 50, 30):
        ids = torch.randint(0, 100, (1, length), generator=generator)
        with torch.inference_mode():
            expected = dm.model(input_ids=ids).logits
        torch.testing.assert_close(graphed(input_ids=ids).logits, expected)
    assert list(graphed.graphs) == [(1, 50), (1, 30)]  # 40 dropped, least recently used


def test_a_failed_capture_falls_back_to_eager_forwards(dm, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(graphs, "_Graph", broken)
    graphed = GraphedModel(dm.model, emulate=True)
    ids = torch.arange(20)[None]
    with torch.inference_mode():
        expected = dm.model(input_ids=ids).logits
    torch.testing.assert_close(graphed(input_ids=ids).logits, expected)
    assert graphed.failed and not graphed.graphs


def test_the_engine_runs_the_model_itself_on_a_cpu(dm):
    assert diffusion_engine.forward_of(dm) is dm.model
