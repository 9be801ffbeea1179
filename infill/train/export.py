"""`infill train export`: training checkpoints -> the shipped default models.

Each shipped model is a standard HF folder (config, one bf16 safetensors file, tokenizer), so
it loads through exactly the code path of a real checkpoint. The config records the context
length the model was trained on (`infill_context`), which the engines respect.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PreTrainedTokenizerFast

from infill.models import compact
from infill.models.loading import DEFAULT_DIR

BUDGET_BYTES = 48 * 1024 * 1024
ROLES = {"target": ("ar", AutoModelForCausalLM), "draft": ("ar", AutoModelForCausalLM),
         "diffusion": ("diffusion", AutoModelForMaskedLM)}


def export(work_dir: Path, out_dir: Path = DEFAULT_DIR, roles: tuple[str, ...] = tuple(ROLES),
           int8: bool = False) -> dict:
    """Exports the named roles (the others stay as they are) and checks the total budget.
    int8: store matrices as int8 with a scale per row (infill/models/compact.py)."""
    for role in roles:
        _export_role(work_dir, out_dir, role, int8)
    sizes = {role: sum(p.stat().st_size for p in (out_dir / role).glob("model*.safetensors"))
             for role in ROLES}
    total = sum(sizes.values())
    if total > BUDGET_BYTES:
        raise SystemExit(f"shipped weights are {total / 2**20:.1f} MiB, over the 48 MiB budget")
    return {"bytes": sizes, "total_mib": round(total / 2**20, 2)}


def _export_role(work_dir: Path, out_dir: Path, role: str, int8: bool) -> None:
    loader = ROLES[role][1]
    checkpoint = work_dir / role / "checkpoint"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    model = loader.from_pretrained(str(checkpoint), dtype=torch.bfloat16)
    model.config.infill_context = state["config"]["seq_len"]
    target = out_dir / role
    if int8:
        compact.save(model, target)
    else:
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("model*.safetensors*"):  # the weights; not the next-token table
            old.unlink()
        model.save_pretrained(str(target), max_shard_size="1GB")
    PreTrainedTokenizerFast.from_pretrained(str(checkpoint)).save_pretrained(str(target))
    (target / "generation_config.json").unlink(missing_ok=True)
