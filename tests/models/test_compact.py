"""Shipped folders with int8 weights load through the same loaders, with nearly the same logits."""


import torch
from transformers import PreTrainedTokenizerFast

from infill.models import compact
from infill.models.loading import DEFAULT_MODELS, load_ar, load_diffusion
from infill.train import architectures
from infill.train.data import SpecialIds


def _tokenizer():
    return PreTrainedTokenizerFast.from_pretrained(str(DEFAULT_MODELS["target"]))


def _compact_folder(model, tokenizer, folder):
    size = compact.save(model, folder)
    tokenizer.save_pretrained(str(folder))
    return size


def test_int8_ar_model_loads_with_close_logits_and_half_the_bytes(tmp_path):
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    model = architectures.ar_model("tiny", len(tokenizer), SpecialIds.of(tokenizer)).eval()
    size = _compact_folder(model, tokenizer, tmp_path / "ar")
    bf16_bytes = 2 * architectures.parameter_count(model)
    assert size < 0.6 * bf16_bytes

    loaded = load_ar(str(tmp_path / "ar"), device="cpu", dtype="float32")
    ids = torch.tensor([tokenizer.encode("def add(a, b):\n    return a + b\n")])
    with torch.no_grad():
        want, got = model(input_ids=ids).logits, loaded.model(input_ids=ids).logits
    assert (got - want).abs().max() < 0.02 * want.abs().max()
    assert loaded.model.lm_head.weight is loaded.model.model.embed_tokens.weight  # still tied


def test_int8_diffusion_model_loads(tmp_path):
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    model = architectures.diffusion_model("tiny", len(tokenizer), SpecialIds.of(tokenizer)).eval()
    _compact_folder(model, tokenizer, tmp_path / "diffusion")
    loaded = load_diffusion(str(tmp_path / "diffusion"), device="cpu", dtype="float32")
    ids = torch.tensor([tokenizer.encode("x = 1\n")])
    with torch.no_grad():
        want, got = model(input_ids=ids).logits, loaded.model(input_ids=ids).logits
    assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_quantize_round_trips_within_half_a_step_per_row():
    torch.manual_seed(1)
    weight = torch.randn(64, 128)
    stored = compact.quantize({"w": weight, "norm": torch.ones(128)})
    assert stored["w"].dtype == torch.int8 and stored["norm"].dtype == torch.bfloat16
    restored = compact.dequantize(stored)["w"]
    step = weight.abs().amax(dim=1, keepdim=True) / 127
    assert ((restored - weight).abs() <= step / 2 + 1e-6).all()


def test_a_compact_folder_with_wrong_weights_is_a_clear_error(tmp_path):
    import pytest

    from infill.models.loading import ModelError

    tokenizer = _tokenizer()
    model = architectures.ar_model("tiny", len(tokenizer), SpecialIds.of(tokenizer))
    _compact_folder(model, tokenizer, tmp_path / "ar")
    other = architectures.ar_model("draft", len(tokenizer), SpecialIds.of(tokenizer))
    other.config.infill_weights = compact.FORMAT
    other.config.save_pretrained(str(tmp_path / "ar"))  # the config of another shape
    with pytest.raises(ModelError, match="cannot load model"):
        load_ar(str(tmp_path / "ar"), device="cpu")
