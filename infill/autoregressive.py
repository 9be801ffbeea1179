"""The AR FIM engine: a FIM prompt, left-to-right (speculative) decoding, text-level stops."""

from __future__ import annotations

from infill.context import cut_completion, fit_to_tokens
from infill.models.loading import ARModel
from infill.request import InfillRequest
from speculative.decode import DecodeResult, Decoder

MAX_LINES = 16


def build_prompt(ar: ARModel, prefix: str, suffix: str, max_new_tokens: int) -> list[int]:
    budget = max(32, ar.context - max_new_tokens)

    def count(p: str, s: str) -> int:
        return len(ar.fim.prompt_ids(ar.tokenizer, p, s))

    prefix, suffix = fit_to_tokens(prefix, suffix, budget, count)
    return ar.fim.prompt_ids(ar.tokenizer, prefix, suffix)


def decoder_of(ar: ARModel) -> Decoder:
    """One decoder per model, kept so the next request reuses the cached prompt prefix."""
    if getattr(ar, "decoder", None) is None:
        ar.decoder = Decoder(ar.model)
    return ar.decoder


def generate(ar: ARModel, request: InfillRequest, multiline: bool,
             drafter=None) -> tuple[str, DecodeResult]:
    """(completion text, decoding statistics)."""
    prompt = build_prompt(ar, request.prefix, request.suffix, request.max_tokens)

    def text_of(tokens: list[int]) -> str:
        return ar.tokenizer.decode(tokens, skip_special_tokens=True)

    def stop_rule(tokens: list[int]) -> bool:
        return cut_completion(text_of(tokens), request.suffix, multiline, MAX_LINES)[1]

    result = decoder_of(ar).generate(
        prompt, max_new_tokens=request.max_tokens, stop_ids=ar.stop_ids, drafter=drafter,
        temperature=request.temperature, top_p=request.top_p, seed=request.seed,
        stop_rule=stop_rule, is_cancelled=lambda: request.cancel.cancelled)
    text, _ = cut_completion(text_of(result.tokens), request.suffix, multiline, MAX_LINES)
    return text, result
