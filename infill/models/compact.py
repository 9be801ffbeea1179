"""Shipped weights stored compactly: int8 matrices with one fp32 scale per row.

The three shipped models share a 48 MiB budget. Stored as int8 with a scale per output row
("int8-rowwise", symmetric, round to nearest), a matrix takes half the bytes of bf16, so twice
the parameters fit; MODELS.md gives the measured cost in held-out loss. The folder is otherwise
a standard transformers checkpoint (config, tokenizer): `config.json` says
`"infill_weights": "int8-rowwise"`, and `load` dequantizes into the model transformers builds
from that config.
"""

from __future__ import annotations

from pathlib import Path

import torch

FORMAT = "int8-rowwise"
CONFIG_KEY = "infill_weights"
SCALE = ".int8_scale"
WEIGHTS_FILE = "model.safetensors"
MIN_ELEMENTS = 4096  # norms and biases stay in bf16: they are tiny and sensitive


def is_compact(config: dict) -> bool:
    return config.get(CONFIG_KEY) == FORMAT


def quantize(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """int8 rows + fp32 scales for every large matrix, bf16 for the rest; tied tensors once."""
    out, seen = {}, set()
    for name, tensor in state_dict.items():
        if tensor.data_ptr() in seen:  # a tied weight (lm_head = embeddings): stored once
            continue
        seen.add(tensor.data_ptr())
        tensor = tensor.detach().cpu()
        if tensor.dim() == 2 and tensor.numel() >= MIN_ELEMENTS and tensor.is_floating_point():
            rows = tensor.float()
            scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            out[name] = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
            out[name + SCALE] = scale
        else:
            out[name] = tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
    return out


def dequantize(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE):
            continue
        scale = stored.get(name + SCALE)
        out[name] = tensor.float() * scale[:, None] if scale is not None else tensor.float()
    return out


def remove_weights(folder: Path) -> None:
    """Deletes a model folder's weight files (either format), before new ones are written; a
    next-token table beside them stays."""
    for old in folder.glob("model*.safetensors*"):
        old.unlink()


def save(model, folder: Path) -> int:
    """Writes config.json (marked compact) and the int8 weights; returns the weights' bytes."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    remove_weights(folder)
    setattr(model.config, CONFIG_KEY, FORMAT)
    model.config.save_pretrained(str(folder))
    save_file(quantize(model.state_dict()), str(folder / WEIGHTS_FILE),
              metadata={"format": "pt", CONFIG_KEY: FORMAT})
    return (folder / WEIGHTS_FILE).stat().st_size


def load(auto_class, folder: str, dtype: torch.dtype, **kwargs):
    """The model of a compact folder, built from its config by auto_class (for example
    AutoModelForCausalLM) and filled with the dequantized weights."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, **kwargs)
    model = auto_class.from_config(config)
    weights = dequantize(load_file(str(Path(folder) / WEIGHTS_FILE)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    model.tie_weights()
    untied = [name for name in missing if not _is_tied(model, name)]
    if untied or unexpected:
        raise ValueError(f"{folder}: weights do not match the config "
                         f"(missing {untied[:3]}, unexpected {unexpected[:3]})")
    return model.to(dtype)


def _is_tied(model, name: str) -> bool:
    """Whether a parameter missing from the file shares its tensor with one that is there."""
    params = dict(model.named_parameters(remove_duplicate=False))
    tensor = params.get(name)
    return tensor is not None and any(other is tensor for key, other in params.items() if key != name)
