"""The server's options: one typed structure, read from `initializationOptions` and
`workspace/didChangeConfiguration`.

Keys are camelCase as editors write them (snake_case is accepted too), either at the top level
or under an `"infill"` section:

    {"infill": {"engine": "auto", "maxTokens": 64, "debounceMs": 25, "device": "cuda"}}

| key               | default  | meaning                                                          |
|-------------------|----------|------------------------------------------------------------------|
| engine            | "auto"   | "auto" (router decides), "speculative" or "diffusion"            |
| target            | null     | AR FIM model folder or cached HF repo id; null: shipped model    |
| draft             | null     | draft model for speculative decoding; null: the shipped draft,   |
|                   |          | where `drafter` asks for one                                     |
| drafter           | "auto"   | what drafts for the AR target: "combined" (n-gram lookup, else   |
|                   |          | the draft model), "model", "ngram", "none"; "auto": combined     |
|                   |          | when `draft` names a model, else ngram (the shipped draft model  |
|                   |          | makes the shipped target slower, BENCHMARKS.md)                  |
| diffusion         | null     | masked-diffusion model folder or repo id; null: shipped model    |
| device            | null     | "cpu", "cuda", "cuda:N"; null: a GPU when there is one           |
| dtype             | null     | "float32", "bfloat16", "float16"; null: by device                |
| fimFormat         | null     | override the AR prompt format detected from the tokenizer        |
| diffusionFamily   | null     | override the detected diffusion family ("infill", "llada", ...)  |
| trustRemoteCode   | false    | allow a checkpoint's own modelling code (LLaDA, Dream)           |
| diffusionLength   | "ar"     | how the diffusion engine sizes a gap: "ar", the length of the AR |
|                   |          | model's greedy completion (which runs first); "pad", an          |
|                   |          | oversized gap that the diffusion model's pads shorten            |
| maxTokens         | 64       | tokens generated per completion, 1 to 1024                       |
| multiline         | "auto"   | "auto" (from the syntax at the cursor), "always" or "never"      |
| debounceMs        | null     | wait this long before an automatic request starts the model;     |
|                   |          | a newer keystroke in that time replaces it (0 to 5000); null: 0  |
|                   |          | when the models run on a CUDA GPU (a completion there takes a    |
|                   |          | few ms: waiting only adds latency, BENCHMARKS.md), else 25       |
| contextChars      | 8000     | characters of the document on each side of the cursor handed to  |
|                   |          | the engines, which clip further to their model (256 to 1000000)  |
| timeoutMs         | 10000    | a completion still running after this is abandoned (100-600000)  |
| warmup            | true     | run one tiny completion per engine right after loading           |
| logEvents         | true     | log shown/accepted events locally (JSONL)                        |
| logDir            | null     | where the event log goes; null: $XDG_STATE_HOME/infill or        |
|                   |          | ~/.local/state/infill                                            |

An invalid value never fails the server: it is reported (one warning per value, shown with
`window/showMessage`) and the default above is used instead. Settings sent later
(`workspace/didChangeConfiguration`) are read over the initialization options: a key they leave
out, or give an invalid value, keeps its initialization value (the default above unless
`initializationOptions` or the `infill serve` command line set it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

ENGINES = ("auto", "speculative", "diffusion")
DRAFTERS = ("auto", "combined", "model", "ngram", "none")  # infill.engines.DRAFTERS
MULTILINE = ("auto", "always", "never")
# The wait before an automatic request starts the model on the CPU, where a completion takes
# ~100 ms of the machine (BENCHMARKS.md, the CPU trace replays). On a CUDA GPU the wait is 0: at
# 120 ms per key, the model's answers in editor traces came at p50 16-18 ms without it against
# 39-41 ms with 25 ms, fewer requests were superseded, and the same characters were saved
# (BENCHMARKS.md, eighth session).
CPU_DEBOUNCE_MS = 25
DTYPES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "auto")
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps|auto)$")
# Options that make up the models' configuration (`ModelConfig`): changing one reloads the models.
MODEL_FIELDS = ("target", "draft", "diffusion", "drafter", "device", "dtype", "fim_format",
                "diffusion_family", "trust_remote_code", "diffusion_length")
DIFFUSION_LENGTHS = ("ar", "pad")  # infill.diffusion.engine.LENGTHS


@dataclass(frozen=True)
class ServerOptions:
    engine: str = "auto"
    target: str | None = None
    draft: str | None = None
    diffusion: str | None = None
    drafter: str = "auto"
    device: str | None = None
    dtype: str | None = None
    fim_format: str | None = None
    diffusion_family: str | None = None
    trust_remote_code: bool = False
    diffusion_length: str = "ar"
    max_tokens: int = 64
    multiline: str = "auto"
    debounce_ms: int | None = None  # None: by the models' device (`debounce_for`)
    context_chars: int = 8000
    timeout_ms: int = 10000
    warmup: bool = True
    log_events: bool = True
    log_dir: str | None = None

    @property
    def multiline_flag(self) -> bool | None:
        """InfillRequest.multiline: None lets the syntax around the cursor decide."""
        return {"auto": None, "always": True, "never": False}[self.multiline]

    def model_config(self):
        from infill.engines import ModelConfig  # imports torch: only where models load

        return ModelConfig(target=self.target, draft=self.draft, diffusion=self.diffusion,
                           drafter=self.drafter, device=self.device, dtype=self.dtype,
                           fim_format=self.fim_format, diffusion_family=self.diffusion_family,
                           trust_remote_code=self.trust_remote_code,
                           diffusion_length=self.diffusion_length)

    def debounce_for(self, device: str | None) -> float:
        """Seconds an automatic request waits before it starts the model on `device` (the
        models' device; None while they load)."""
        if self.debounce_ms is not None:
            return self.debounce_ms / 1000
        on_gpu = device is not None and device.startswith("cuda")
        return 0.0 if on_gpu else CPU_DEBOUNCE_MS / 1000

    def models_differ(self, other: ServerOptions) -> bool:
        return any(getattr(self, f) != getattr(other, f) for f in MODEL_FIELDS)

    def to_json(self) -> dict:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}


# --- checks: each returns the value to use, or raises ValueError with what is allowed ----------

def _choice(*allowed: str) -> Callable[[Any], str]:
    def check(value):
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"use one of {', '.join(allowed)}")
        return value
    return check


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or value != int(value) or not low <= value <= high:
            raise ValueError(f"use an integer from {low} to {high}")
        return int(value)
    return check


def _boolean(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("use true or false")
    return value


def _path(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("use a folder path, a cached repo id or null")
    return value


def _device(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not DEVICE.match(value):
        raise ValueError("use cpu, cuda, cuda:N or null")
    return None if value == "auto" else value


def _optional_integer(low: int, high: int) -> Callable[[Any], int | None]:
    def check(value):
        if value is None:
            return None
        try:
            return _integer(low, high)(value)
        except ValueError:
            raise ValueError(f"use an integer from {low} to {high}, or null") from None
    return check


def _optional_choice(*allowed: str) -> Callable[[Any], str | None]:
    pick = _choice(*allowed)
    return lambda value: None if value in (None, "") else pick(value)


def _optional_name(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("use a name or null")
    return value


CHECKS: dict[str, Callable[[Any], Any]] = {
    "engine": _choice(*ENGINES),
    "target": _path,
    "draft": _path,
    "diffusion": _path,
    "drafter": _choice(*DRAFTERS),
    "device": _device,
    "dtype": _optional_choice(*DTYPES),
    "fim_format": _optional_name,
    "diffusion_family": _optional_name,
    "trust_remote_code": _boolean,
    "diffusion_length": _choice(*DIFFUSION_LENGTHS),
    "max_tokens": _integer(1, 1024),
    "multiline": _choice(*MULTILINE),
    "debounce_ms": _optional_integer(0, 5000),
    "context_chars": _integer(256, 1_000_000),
    "timeout_ms": _integer(100, 600_000),
    "warmup": _boolean,
    "log_events": _boolean,
    "log_dir": _path,
}
assert set(CHECKS) == {f.name for f in fields(ServerOptions)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


KEYS = {**{name: name for name in CHECKS}, **{_camel(name): name for name in CHECKS}}


def parse_options(raw: Any, defaults: ServerOptions | None = None) -> tuple[ServerOptions, list[str]]:
    """(options, warnings). Every key absent or invalid keeps its value in `defaults` (the
    documented defaults unless the command line set others); nothing here raises."""
    defaults = defaults or ServerOptions()
    if raw is None:
        return defaults, []
    if not isinstance(raw, dict):
        return defaults, [f"infill: options must be an object, not {type(raw).__name__}; "
                          "using the defaults"]
    if isinstance(raw.get("infill"), dict):
        raw = raw["infill"]
    changes, warnings = {}, []
    for key, value in raw.items():
        name = KEYS.get(key) if isinstance(key, str) else None
        if name is None:
            warnings.append(f"infill: unknown option {key!r} ignored")
            continue
        try:
            changes[name] = CHECKS[name](value)
        except ValueError as exc:
            default = getattr(defaults, name)
            warnings.append(f"infill: option {_camel(name)}={_short(value)} is invalid ({exc}); "
                            f"using {_short(default)}")
    return replace(defaults, **changes), warnings


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
