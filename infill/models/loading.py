"""Loading AR and diffusion checkpoints offline, from a local folder or the local HF cache.

Every failure becomes a `ModelError` with a one-line message that says which model, where, and
what to do; nothing here ever reaches for a model hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from speculative.fim import FORMATS, FimFormat, detect_format, stop_ids

hf_logging.disable_progress_bar()  # a completion server's log is no place for progress bars

DEFAULT_DIR = Path(__file__).parent / "default"
DEFAULT_MODELS = {"target": DEFAULT_DIR / "target", "draft": DEFAULT_DIR / "draft",
                  "diffusion": DEFAULT_DIR / "diffusion"}


class ModelError(RuntimeError):
    """A model could not be loaded; the message is meant for the user as it is."""


@dataclass
class ARModel:
    model: torch.nn.Module
    tokenizer: object
    fim: FimFormat
    stop_ids: set[int]
    name: str
    context: int  # prompt + completion tokens the model handles well
    decoder: object = None  # speculative.decode.Decoder, made on first use (holds the KV cache)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass
class DiffusionModel:
    model: torch.nn.Module
    tokenizer: object
    family: str  # "infill", "llada" or "dream"
    mask_id: int
    collapse_ids: set[int]  # tokens that fill the surplus of an oversized gap and are dropped
    banned_ids: set[int] = field(default_factory=set)  # never committed inside the gap
    shift_logits: bool = False  # Dream family: logits at i predict the token at i + 1
    name: str = ""
    context: int = 512

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def pick_device(name: str | None = None) -> torch.device:
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def pick_dtype(device: torch.device, name: str | None = None) -> torch.dtype:
    """bf16 on a GPU (halves the bytes each decode step reads); fp32 on the CPU, where bf16
    matmuls are slow on most processors."""
    if name in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
              "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name not in dtypes:
        raise ModelError(f"unknown dtype {name!r}: use one of {', '.join(dtypes)}")
    return dtypes[name]


def _source(path: str | os.PathLike) -> str:
    """A local folder, or a repo id to look up in the local HF cache only."""
    text = str(path)
    if Path(text).expanduser().exists():
        folder = Path(text).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelError(f"{folder} is not a model folder: it has no config.json")
        return str(folder)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ModelError(f"model folder {text} does not exist")
    return text  # "org/name": resolved offline from the HF cache


def _load(what: str, path, loader, **kwargs):
    source = _source(path)
    try:
        return loader(source, local_files_only=True, **kwargs)
    except ModelError:
        raise
    except Exception as exc:  # transformers raises many types for one cause: a bad folder
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {what} from {path}: {reason[:300]}") from exc


def load_tokenizer(path):
    from transformers import AutoTokenizer

    return _load("tokenizer", path, AutoTokenizer.from_pretrained)


def load_ar(path=None, device: str | None = None, dtype: str | None = None,
            fim_format: str | None = None, trust_remote_code: bool = False) -> ARModel:
    """An AR FIM model; its prompt format is detected from the tokenizer unless named."""
    from transformers import AutoModelForCausalLM

    path = path or DEFAULT_MODELS["target"]
    dev = pick_device(device)
    tokenizer = load_tokenizer(path)
    if fim_format:
        if fim_format not in FORMATS:
            raise ModelError(f"unknown FIM format {fim_format!r}: use one of {', '.join(FORMATS)}")
        fmt = FORMATS[fim_format]
    else:
        fmt = detect_format(tokenizer)
        if fmt is None:
            raise ModelError(f"{path}: its tokenizer has no FIM tokens of a known family; "
                             f"name the format ({', '.join(FORMATS)}) in the configuration")
    model = _load("model", path, AutoModelForCausalLM.from_pretrained,
                  dtype=pick_dtype(dev, dtype), trust_remote_code=trust_remote_code)
    model.to(dev).eval()
    context = getattr(model.config, "infill_context", None) or min(
        getattr(model.config, "max_position_embeddings", 4096) or 4096, 8192)
    return ARModel(model, tokenizer, fmt, stop_ids(tokenizer, fmt), _name(path), int(context))


DIFFUSION_FAMILIES = ("infill", "llada", "dream")
LLADA_MASK_ID = 126336


def detect_diffusion_family(config) -> str:
    model_type = str(getattr(config, "model_type", "")).lower()
    if "llada" in model_type:
        return "llada"
    if "dream" in model_type or "diffucoder" in model_type:
        return "dream"
    return "infill"


def load_diffusion(path=None, device: str | None = None, dtype: str | None = None,
                   family: str | None = None, trust_remote_code: bool = False) -> DiffusionModel:
    """A masked-diffusion model. LLaDA and Dream ship their own modelling code, which runs
    only when the user allows it (trust_remote_code)."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    path = path or DEFAULT_MODELS["diffusion"]
    dev = pick_device(device)
    config = _load("config", path, AutoConfig.from_pretrained, trust_remote_code=trust_remote_code)
    family = family or detect_diffusion_family(config)
    if family not in DIFFUSION_FAMILIES:
        raise ModelError(f"unknown diffusion family {family!r}: use one of {', '.join(DIFFUSION_FAMILIES)}")
    if getattr(config, "auto_map", None) and not trust_remote_code:
        raise ModelError(f"{path} needs its own modelling code; allow it with --trust-remote-code "
                         "(or trust_remote_code in the configuration) if you trust its source")
    tokenizer = load_tokenizer(path)
    loader = AutoModel.from_pretrained if getattr(config, "auto_map", None) else AutoModelForMaskedLM.from_pretrained
    model = _load("model", path, loader, dtype=pick_dtype(dev, dtype),
                  trust_remote_code=trust_remote_code)
    model.to(dev).eval()
    mask_id, collapse = _diffusion_tokens(family, config, tokenizer)
    special = {i for i in tokenizer.all_special_ids if i is not None}
    special.update(i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special)
    context = getattr(config, "infill_context", None) or min(
        getattr(config, "max_position_embeddings", 4096) or 4096, 4096)
    return DiffusionModel(model, tokenizer, family, mask_id, collapse,
                          banned_ids=special - collapse, shift_logits=family == "dream",
                          name=_name(path), context=int(context))


def _diffusion_tokens(family: str, config, tokenizer) -> tuple[int, set[int]]:
    """(mask id, collapse ids) of a family."""
    if family == "llada":
        mask_id = getattr(config, "mask_token_id", None) or LLADA_MASK_ID
    else:
        mask_id = tokenizer.mask_token_id
        if mask_id is None:
            mask_id = tokenizer.get_vocab().get("<|mask|>")
    if mask_id is None:
        raise ModelError(f"the {family} model's tokenizer has no mask token")
    collapse = {i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None}
    for name in ("<|endoftext|>", "<|eot_id|>", "<|end|>", "<|pad|>"):
        if name in tokenizer.get_vocab():
            collapse.add(tokenizer.get_vocab()[name])
    collapse.discard(mask_id)
    return int(mask_id), collapse


def _name(path) -> str:
    p = Path(str(path))
    if p.resolve().parent == DEFAULT_DIR.resolve():
        return f"infill-default/{p.name}"
    return p.name if p.exists() else str(path)
