"""Test helpers for batch: tiny model folders and JSONL task files."""

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def build_tiny_models(folder: Path) -> dict[str, Path]:
    from infill.train.architectures import ar_model, diffusion_model
    from infill.train.data import SpecialIds
    from infill.train.tokenizer import train_tokenizer

    # the tokenizer learns from standard-library modules, not from this repository's files: a
    # change to any of those retrained it, and with it what the tiny random models write
    import argparse, dataclasses, inspect, json.decoder, pathlib, textwrap  # noqa: E401
    modules = (argparse, dataclasses, inspect, json.decoder, pathlib, textwrap)
    texts = [Path(m.__file__).read_text() for m in modules]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    ids = SpecialIds.of(tokenizer)
    paths = {}
    for role, make in (("target", ar_model), ("diffusion", diffusion_model)):
        torch.manual_seed(0)
        model = make("tiny", len(tokenizer), ids, max_positions=1024)
        # Large random weights: at the usual init (std 0.02) a random model's output hardly
        # depends on its context (an AR model repeats its last input token, a diffusion model
        # puts one token everywhere), which would make batched == single trivially true.
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() == 2:
                    parameter.mul_(30.0)
        model.config.infill_context = 512
        path = folder / role
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
        paths[role] = path
    return paths


def code_tasks(count: int, seed: int = 0, longest: int = 700) -> list[dict]:
    """Human-eval-infilling-shaped rows cut from two standard-library modules (files that do
    not change with this repository), with prefixes and suffixes of varied lengths (so
    batches mix lengths)."""
    import random
    import shlex
    import textwrap

    rng = random.Random(seed)
    text = Path(textwrap.__file__).read_text() + Path(shlex.__file__).read_text()
    rows = []
    for i in range(count):
        cut = rng.randrange(200, len(text) - 200)
        rows.append({"task_id": f"code/{i}", "prompt": text[:cut][-rng.randrange(20, longest):],
                     "suffix": text[cut:][:rng.randrange(0, longest // 2)], "language": "python"})
    return rows


def write_jsonl(path: Path, rows) -> Path:
    import json

    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
