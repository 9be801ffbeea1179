"""Loading AR and diffusion checkpoints offline, from a local folder or the local HF cache.

Every failure becomes a `ModelError` with a one-line message that says which model, where, and
what to do; nothing here ever reaches for a model hub.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from infill.models import compact
from speculative.drafters import NextTokens
from speculative.fim import FORMATS, FimFormat, control_token_ids, detect_format, stop_ids

hf_logging.disable_progress_bar()  # a completion server's log is no place for progress bars

DEFAULT_DIR = Path(__file__).parent / "default"
DEFAULT_MODELS = {"target": DEFAULT_DIR / "target", "draft": DEFAULT_DIR / "draft",
                  "diffusion": DEFAULT_DIR / "diffusion"}
# beside an AR model: the corpus's likeliest next tokens in its vocabulary, which the n-gram
# drafter's trees guess from (`infill train next-tokens`); a model without one drafts without
NEXT_TOKENS_FILE = "next_tokens.safetensors"


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
    line_breaks: frozenset | None = None  # autoregressive.line_break_ids, found on first use
    next_tokens: NextTokens | None = None  # the table beside the model (NEXT_TOKENS_FILE)

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
    graphed: object = field(default=None, repr=False)  # diffusion.engine.forward_of's wrapper

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
    # "org/name": resolved offline from the HF cache, so it must be there.
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(text, "config.json")
    except Exception:  # not a valid repo id either
        cached = None
    if not isinstance(cached, str):
        raise ModelError(f"{text} is neither a model folder nor a model in the local Hugging Face "
                         "cache; download it there first, or give the model's folder")
    return text


def _load(what: str, path, loader, **kwargs):
    source = _source(path)
    try:
        return loader(source, local_files_only=True, **kwargs)
    except ModelError:
        raise
    except Exception as exc:  # transformers raises many types for one cause: a bad folder
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {what} from {path}: {reason[:300]}") from exc


def load_tokenizer(path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if _byte_level_declared_as_llama(path):
        # DeepSeek-Coder declares LlamaTokenizerFast but ships a byte-level tokenizer.json.
        # transformers before ~5.2x then builds its SentencePiece-style Llama tokenizer, which
        # drops every space and newline of the code; the tokenizer.json is used as it is.
        return _load("tokenizer", path, PreTrainedTokenizerFast.from_pretrained)
    # trust_remote_code is always passed as a bool: left at None, transformers asks
    # "Do you wish to run the custom code? [y/N]" on stdout and reads the answer from stdin,
    # which for the LSP server is the protocol stream.
    return _load("tokenizer", path, AutoTokenizer.from_pretrained,
                 trust_remote_code=bool(trust_remote_code))


def _byte_level_declared_as_llama(path) -> bool:
    import json

    from transformers.utils import cached_file

    try:
        source = _source(path)
        files = [cached_file(source, name, local_files_only=True,
                             _raise_exceptions_for_missing_entries=False)
                 for name in ("tokenizer_config.json", "tokenizer.json")]
        if None in files:
            return False
        config = json.loads(Path(files[0]).read_text(encoding="utf-8"))
        declared = str(config.get("tokenizer_class") or "")
        if config.get("auto_map") or declared.removesuffix("Fast") != "LlamaTokenizer":
            return False
        pipeline = json.loads(Path(files[1]).read_text(encoding="utf-8"))
        return "ByteLevel" in json.dumps([pipeline.get("pre_tokenizer"), pipeline.get("decoder")])
    except Exception:  # whatever is wrong is reported by the loader itself
        return False


def _config_dict(path) -> dict:
    """config.json as a dict, read without running any code the checkpoint ships."""
    from transformers import PretrainedConfig

    config, _ = _load("config", path, PretrainedConfig.get_config_dict)
    if not isinstance(config, dict):
        raise ModelError(f"cannot load config from {path}: config.json does not hold a JSON object")
    return config


def _needs_trust(path, config: dict, trust_remote_code: bool, unknown_only: bool = False) -> None:
    """ModelError if the checkpoint ships modelling code and the user has not allowed it to run
    (unknown_only: only where transformers has no class of its own for the model type)."""
    from transformers import CONFIG_MAPPING

    if not config.get("auto_map") or trust_remote_code:
        return
    if not unknown_only or config.get("model_type") not in CONFIG_MAPPING:
        raise ModelError(f"{path} needs its own modelling code; allow it with --trust-remote-code "
                         "(or trust_remote_code in the configuration) if you trust its source")


def _model_loader(auto_class, config: dict):
    """auto_class.from_pretrained, or the loader of compact (int8) shipped folders."""
    if compact.is_compact(config):
        return functools.partial(compact.load, auto_class)
    return auto_class.from_pretrained


def load_ar(path=None, device: str | None = None, dtype: str | None = None,
            fim_format: str | None = None, trust_remote_code: bool = False) -> ARModel:
    """An AR FIM model; its prompt format is detected from the tokenizer unless named."""
    from transformers import AutoModelForCausalLM

    path = path or DEFAULT_MODELS["target"]
    dev = pick_device(device)
    if fim_format and fim_format not in FORMATS:
        raise ModelError(f"unknown FIM format {fim_format!r}: use one of {', '.join(FORMATS)}")
    raw = _config_dict(path)
    _needs_trust(path, raw, trust_remote_code, unknown_only=True)
    tokenizer = load_tokenizer(path, trust_remote_code)
    if fim_format:
        fmt = FORMATS[fim_format]
        if fmt.control_ids(tokenizer) is None:
            tokens = f"{fmt.prefix_token} {fmt.suffix_token} {fmt.middle_token}"
            raise ModelError(f"{path}: its tokenizer has no {fmt.name} FIM tokens ({tokens}); "
                             f"name the format that matches it ({', '.join(FORMATS)})")
    else:
        fmt = detect_format(tokenizer)
        if fmt is None:
            raise ModelError(f"{path}: its tokenizer has no FIM tokens of a known family; "
                             f"name the format ({', '.join(FORMATS)}) in the configuration")
    model = _load("model", path, _model_loader(AutoModelForCausalLM, raw),
                  dtype=pick_dtype(dev, dtype), trust_remote_code=trust_remote_code)
    model.to(dev).eval()
    context = getattr(model.config, "infill_context", None) or min(
        getattr(model.config, "max_position_embeddings", 4096) or 4096, 8192)
    return ARModel(model, tokenizer, fmt, stop_ids(tokenizer, fmt), _name(path), int(context),
                   next_tokens=load_next_tokens(path, model.get_input_embeddings().num_embeddings))


def load_next_tokens(path, vocab: int | None = None) -> NextTokens | None:
    """The next-token table beside a model, if it has one (a local folder); with `vocab`, one
    naming a token the model does not have (another model's table) is refused: its guesses
    would index past the embeddings."""
    table = Path(path) / NEXT_TOKENS_FILE
    if not table.is_file():
        return None
    remake = f"remake it with `infill train next-tokens --model {path}` or delete it"
    try:
        loaded = NextTokens.load(table)
    except ValueError as exc:
        raise ModelError(f"{exc}; {remake}") from exc
    if vocab is not None and loaded.largest >= vocab:
        raise ModelError(f"{table} names token {loaded.largest}, past the model's {vocab}: "
                         f"another model's table? {remake}")
    return loaded


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
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    path = path or DEFAULT_MODELS["diffusion"]
    dev = pick_device(device)
    if family is not None and family not in DIFFUSION_FAMILIES:
        raise ModelError(f"unknown diffusion family {family!r}: "
                         f"use one of {', '.join(DIFFUSION_FAMILIES)}")
    # Checked on the raw config.json: AutoConfig itself refuses a config whose class is custom
    # code, with a message that does not say how to allow it here.
    raw = _config_dict(path)
    _needs_trust(path, raw, trust_remote_code)
    config = _load("config", path, AutoConfig.from_pretrained, trust_remote_code=trust_remote_code)
    family = family or detect_diffusion_family(config)
    tokenizer = load_tokenizer(path, trust_remote_code)
    auto_map = raw.get("auto_map") or {}
    if auto_map:  # the checkpoint's own class: LLaDA and Dream register it for AutoModel
        autos = {"AutoModel": AutoModel, "AutoModelForMaskedLM": AutoModelForMaskedLM,
                 "AutoModelForCausalLM": AutoModelForCausalLM}
        loader = next((a for k, a in autos.items() if k in auto_map), AutoModel).from_pretrained
    else:
        loader = _model_loader(AutoModelForMaskedLM, raw)
    model = _load("model", path, loader, dtype=pick_dtype(dev, dtype),
                  trust_remote_code=trust_remote_code)
    model.to(dev).eval()
    mask_id, collapse = _diffusion_tokens(family, config, tokenizer)
    # Control tokens never go into the gap, also those a tokenizer does not mark special
    # (Dream's tokenizer is Qwen2.5's, whose "<|fim_prefix|>" etc. are not).
    special = {i for i in tokenizer.all_special_ids if i is not None}
    special.update(control_token_ids(tokenizer))
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
