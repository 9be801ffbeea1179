"""The AR FIM engine: a FIM prompt, left-to-right (speculative) decoding, text-level stops."""

from __future__ import annotations

from collections.abc import Callable

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


def text_of(ar: ARModel, tokens: list[int]) -> str:
    return ar.tokenizer.decode(tokens, skip_special_tokens=True)


def completion_text(ar: ARModel, tokens: list[int], suffix: str, multiline: bool) -> str:
    """The decoded tokens cut to the request's shape (`cut_completion`)."""
    return cut_completion(text_of(ar, tokens), suffix, multiline, MAX_LINES)[0]


def line_break_ids(ar: ARModel) -> frozenset[int]:
    """The ids of the tokens whose text holds a line break (found once per model)."""
    if ar.line_breaks is None:
        ids = range(len(ar.tokenizer))
        texts = ar.tokenizer.batch_decode([[i] for i in ids])
        ar.line_breaks = frozenset(i for i, text in zip(ids, texts) if "\n" in text)
    return ar.line_breaks


def stop_rule(ar: ARModel, suffix: str, multiline: bool) -> Callable[[list[int]], bool]:
    """Whether decoding can stop after these tokens (`cut_completion`'s answer), asked after
    each new token. Every reason to stop is a line, so the tokens are decoded again only when
    the newest one ends a line: decoding the whole completion at every token cost more than
    a batched decode step of a small model on a GPU."""
    breaks = line_break_ids(ar)

    def rule(tokens: list[int]) -> bool:
        if tokens[-1] not in breaks:
            return False
        return cut_completion(text_of(ar, tokens), suffix, multiline, MAX_LINES)[1]

    return rule


def generate(ar: ARModel, request: InfillRequest, multiline: bool,
             drafter=None) -> tuple[str, DecodeResult]:
    """(completion text, decoding statistics)."""
    prompt = build_prompt(ar, request.prefix, request.suffix, request.max_tokens)
    result = decoder_of(ar).generate(
        prompt, max_new_tokens=request.max_tokens, stop_ids=ar.stop_ids, drafter=drafter,
        temperature=request.temperature, top_p=request.top_p, seed=request.seed,
        stop_rule=stop_rule(ar, request.suffix, multiline),
        is_cancelled=lambda: request.cancel.cancelled)
    return completion_text(ar, result.tokens, request.suffix, multiline), result
