"""Loading AR and diffusion checkpoints of every supported family, offline, from a folder; and
the one-line errors a user gets for a bad model path."""

import json
import shutil

import pytest
import torch

import tiny_checkpoints as tiny
from infill.models.loading import (ModelError, detect_diffusion_family, load_ar,
                                   load_diffusion, load_tokenizer, pick_device, pick_dtype)
from speculative.fim import FORMATS

# ---------------------------------------------------------------------------- AR families


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
def test_load_ar_detects_the_family(ar_folder, family):
    ar = load_ar(ar_folder(family), device="cpu")
    assert ar.fim is FORMATS[family]
    assert ar.device == torch.device("cpu")
    assert all(p.dtype == torch.float32 for p in ar.model.parameters())
    assert not ar.model.training
    tok = ar.tokenizer
    stops = set(tok.convert_ids_to_tokens(sorted(ar.stop_ids)))
    assert set(tiny.EXPECTED_STOPS[family]) <= stops
    assert tok.eos_token_id in ar.stop_ids
    # A stop id is a control token, never a piece of code.
    assert not any(t in stops for t in ("def", "Ġ", "▁", "(", "\n"))
    assert ar.context > 0 and ar.name == ar_folder(family).name


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
def test_loaded_tokenizer_round_trips_code(ar_folder, family):
    """Code keeps every space and newline through the loaded tokenizer (transformers 5.17 loads
    a DeepSeek-Coder tokenizer, declared LlamaTokenizerFast, as SentencePiece and loses them)."""
    tok = load_tokenizer(ar_folder(family))
    for code in tiny.CODE[:5]:
        assert tok.decode(tok.encode(code, add_special_tokens=False)) == code


@pytest.mark.parametrize("family", tiny.AR_FAMILIES)
def test_prompt_of_a_loaded_model_runs_through_it(ar_folder, family):
    ar = load_ar(ar_folder(family), device="cpu")
    ids = ar.fim.prompt_ids(ar.tokenizer, "def add(a, b):\n    return ", "\n")
    assert all(isinstance(i, int) and 0 <= i < ar.model.config.vocab_size for i in ids)
    with torch.inference_mode():
        logits = ar.model(input_ids=torch.tensor([ids])).logits
    assert logits.shape[:2] == (1, len(ids))


def test_fim_format_override(ar_folder):
    ar = load_ar(ar_folder("qwen"), device="cpu", fim_format="qwen")
    assert ar.fim is FORMATS["qwen"]
    assert ar.tokenizer.convert_tokens_to_ids("<|fim_prefix|>") in ar.stop_ids


def test_override_naming_a_family_the_tokenizer_lacks(ar_folder):
    with pytest.raises(ModelError) as err:
        load_ar(ar_folder("starcoder"), device="cpu", fim_format="qwen")
    message = str(err.value)
    assert "qwen" in message and "<|fim_prefix|>" in message and "\n" not in message


def test_unknown_fim_format(ar_folder):
    with pytest.raises(ModelError) as err:
        load_ar(ar_folder("qwen"), device="cpu", fim_format="gpt5")
    assert "gpt5" in str(err.value) and "qwen" in str(err.value)


def test_tokenizer_without_fim_tokens_asks_for_the_format(ar_folder):
    with pytest.raises(ModelError) as err:
        load_ar(ar_folder("plain"), device="cpu")
    message = str(err.value)
    assert "name the format" in message and "\n" not in message
    assert str(ar_folder("plain")) in message


def test_plain_tokenizer_with_a_named_format_it_lacks(ar_folder):
    with pytest.raises(ModelError) as err:
        load_ar(ar_folder("plain"), device="cpu", fim_format="infill")
    assert "<|prefix|>" in str(err.value)


def test_device_and_dtype_choices():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.bfloat16
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ModelError):
        pick_dtype(torch.device("cpu"), "float8")
    with pytest.raises(ModelError):
        pick_device("tpu:7")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError) as err:
            pick_device("cuda")
        assert "CUDA" in str(err.value)


def test_dtype_option_is_applied(ar_folder):
    ar = load_ar(ar_folder("infill"), device="cpu", dtype="bf16")
    assert next(ar.model.parameters()).dtype == torch.bfloat16


# ---------------------------------------------------------------------- diffusion families


def test_our_diffusion_model(infill_diffusion):
    dm = load_diffusion(infill_diffusion, device="cpu")
    tok = dm.tokenizer
    assert dm.family == "infill"
    assert dm.mask_id == tok.convert_tokens_to_ids("<|mask|>")
    assert dm.shift_logits is False
    assert set(tok.convert_tokens_to_ids(["<|pad|>", "<|end|>"])) <= dm.collapse_ids
    assert dm.mask_id not in dm.collapse_ids
    for t in ("<|prefix|>", "<|suffix|>", "<|middle|>"):
        assert tok.convert_tokens_to_ids(t) in dm.banned_ids
    assert not dm.banned_ids & dm.collapse_ids
    assert next(dm.model.parameters()).dtype == torch.float32


def test_llada_needs_trust_remote_code(llada):
    with pytest.raises(ModelError) as err:
        load_diffusion(llada, device="cpu")
    message = str(err.value)
    assert "trust-remote-code" in message and str(llada) in message and "\n" not in message


def test_llada_with_trust_remote_code(llada):
    dm = load_diffusion(llada, device="cpu", trust_remote_code=True)
    assert dm.family == "llada"
    assert dm.mask_id == 126336 == tiny.LLADA_MASK
    assert dm.tokenizer.convert_ids_to_tokens(dm.mask_id) == "<|mdm_mask|>"
    assert dm.shift_logits is False
    assert type(dm.model).__name__ == "LLaDAModelLM"  # the checkpoint's own class ran
    assert dm.model.config.model_type == "llada"
    assert {126081, 126348} <= dm.collapse_ids  # <|endoftext|>, <|eot_id|>
    assert dm.mask_id not in dm.collapse_ids
    with torch.inference_mode():
        logits = dm.model(input_ids=torch.tensor([[5, dm.mask_id, 7]])).logits
    assert logits.shape == (1, 3, tiny.LLADA_VOCAB)


def test_dream_needs_trust_remote_code(dream):
    with pytest.raises(ModelError) as err:
        load_diffusion(dream, device="cpu")
    assert "trust-remote-code" in str(err.value)


def test_dream_with_trust_remote_code(dream):
    dm = load_diffusion(dream, device="cpu", trust_remote_code=True)
    assert dm.family == "dream"
    assert dm.mask_id == dm.tokenizer.convert_tokens_to_ids("<|mask|>")
    assert dm.shift_logits is True
    assert type(dm.model).__name__ == "DreamModel"
    assert type(dm.tokenizer).__name__ == "DreamTokenizer"  # its tokenizer is custom code too
    assert dm.tokenizer.convert_tokens_to_ids("<|endoftext|>") in dm.collapse_ids
    # Qwen2.5's FIM tokens are not marked special in its tokenizer; they are still banned.
    for t in ("<|fim_prefix|>", "<|fim_middle|>", "<|beginoftext|>", "<tool_call>"):
        assert dm.tokenizer.convert_tokens_to_ids(t) in dm.banned_ids


def test_family_override_on_a_standard_architecture(infill_diffusion):
    dm = load_diffusion(infill_diffusion, device="cpu", family="dream")
    assert dm.family == "dream" and dm.shift_logits is True
    with pytest.raises(ModelError) as err:
        load_diffusion(infill_diffusion, device="cpu", family="bert")
    assert "bert" in str(err.value)


def test_detect_diffusion_family():
    from types import SimpleNamespace as NS

    assert detect_diffusion_family(NS(model_type="llada")) == "llada"
    assert detect_diffusion_family(NS(model_type="Dream")) == "dream"
    assert detect_diffusion_family(NS(model_type="modernbert")) == "infill"


def test_remote_code_never_prompts_on_the_terminal(llada, monkeypatch, capsys):
    """Left undecided, transformers asks "[y/N]" on stdout and reads stdin: for the LSP server
    that is the protocol stream. The loader always decides."""
    asked = []
    monkeypatch.setattr("builtins.input", lambda *a: asked.append(a) or "n")
    with pytest.raises(ModelError):
        load_ar(llada, device="cpu")
    load_tokenizer(llada)
    assert not asked
    assert "custom code" not in capsys.readouterr().out


# ------------------------------------------------------------------------ bad model paths


def _corrupt_config(folder):
    (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": ')


def _corrupt_weights(folder):
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")


def _truncated_weights(folder):
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:200])


def _no_config(folder):
    (folder / "config.json").unlink()


BROKEN = {"corrupt config.json": _corrupt_config, "corrupt safetensors": _corrupt_weights,
          "truncated safetensors": _truncated_weights, "no config.json": _no_config}


def _assert_one_line(err, path):
    assert type(err.value) is ModelError
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert str(path) in message, message


@pytest.mark.parametrize("load", [load_ar, load_diffusion], ids=["ar", "diffusion"])
def test_missing_folder(tmp_path, load):
    path = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelError) as err:
        load(path, device="cpu")
    _assert_one_line(err, path)


@pytest.mark.parametrize("load", [load_ar, load_diffusion], ids=["ar", "diffusion"])
def test_empty_folder(tmp_path, load):
    with pytest.raises(ModelError) as err:
        load(tmp_path, device="cpu")
    _assert_one_line(err, tmp_path)
    assert "config.json" in str(err.value)


@pytest.mark.parametrize("damage", BROKEN)
def test_broken_ar_checkpoint(ar_folder, tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(ar_folder("infill"), folder)
    BROKEN[damage](folder)
    with pytest.raises(ModelError) as err:
        load_ar(folder, device="cpu")
    _assert_one_line(err, folder)


@pytest.mark.parametrize("damage", BROKEN)
def test_broken_diffusion_checkpoint(infill_diffusion, tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(infill_diffusion, folder)
    BROKEN[damage](folder)
    with pytest.raises(ModelError) as err:
        load_diffusion(folder, device="cpu")
    _assert_one_line(err, folder)


def test_config_that_is_not_an_object(ar_folder, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(ar_folder("infill"), folder)
    (folder / "config.json").write_text(json.dumps(["llama"]))
    with pytest.raises(ModelError) as err:
        load_ar(folder, device="cpu")
    _assert_one_line(err, folder)


@pytest.mark.parametrize("load", [load_ar, load_diffusion], ids=["ar", "diffusion"])
def test_hub_id_not_in_the_local_cache(tmp_path, monkeypatch, load):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as err:
        load("no-such-org/no-such-model", device="cpu")
    _assert_one_line(err, "no-such-org/no-such-model")


def test_relative_path_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as err:
        load_ar("./models/target", device="cpu")
    _assert_one_line(err, "./models/target")


def test_hub_id_in_the_local_cache(ar_folder, tmp_path, monkeypatch):
    """An "org/name" the user downloaded before loads from the HF cache, offline."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny-coder"
    shutil.copytree(ar_folder("qwen"), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    ar = load_ar("acme/tiny-coder", device="cpu")
    assert ar.fim is FORMATS["qwen"] and ar.name == "acme/tiny-coder"
