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
from infill.models.loading import DEFAULT_DIR, NEXT_TOKENS_FILE

BUDGET_BYTES = 48 * 1024 * 1024
ROLES = {"target": ("ar", AutoModelForCausalLM), "draft": ("ar", AutoModelForCausalLM),
         "diffusion": ("diffusion", AutoModelForMaskedLM)}


def export(work_dir: Path, out_dir: Path = DEFAULT_DIR, roles: tuple[str, ...] = tuple(ROLES),
           int8: bool = False) -> dict:
    """Exports the named roles (the others stay as they are) and checks the total budget.
    int8: store matrices as int8 with a scale per row (infill/models/compact.py).
    A role's next-token table (NEXT_TOKENS_FILE) stays while its tokenizer does; with another
    tokenizer its ids mean other tokens, so it is removed (`infill train next-tokens` makes it
    again) and the result names the role under "next_tokens_removed"."""
    removed = [role for role in roles if _export_role(work_dir, out_dir, role, int8)]
    # the weights and a next-token table beside them: all of it ships in the repository
    sizes = {role: sum(p.stat().st_size for p in (out_dir / role).glob("*.safetensors"))
             for role in ROLES}
    total = sum(sizes.values())
    if total > BUDGET_BYTES:
        raise SystemExit(f"shipped models are {total / 2**20:.1f} MiB, over the 48 MiB budget")
    return {"bytes": sizes, "total_mib": round(total / 2**20, 2), "next_tokens_removed": removed}


def _export_role(work_dir: Path, out_dir: Path, role: str, int8: bool) -> bool:
    """Writes one role; True where it removed a next-token table of another tokenizer."""
    loader = ROLES[role][1]
    checkpoint = work_dir / role / "checkpoint"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    model = loader.from_pretrained(str(checkpoint), dtype=torch.bfloat16)
    model.config.infill_context = state["config"]["seq_len"]
    target = out_dir / role
    tokenizer_file = target / "tokenizer.json"
    old_tokenizer = tokenizer_file.read_bytes() if tokenizer_file.is_file() else None
    if int8:
        compact.save(model, target)
    else:
        target.mkdir(parents=True, exist_ok=True)
        compact.remove_weights(target)
        model.save_pretrained(str(target), max_shard_size="1GB")
    PreTrainedTokenizerFast.from_pretrained(str(checkpoint)).save_pretrained(str(target))
    (target / "generation_config.json").unlink(missing_ok=True)
    table = target / NEXT_TOKENS_FILE
    if table.is_file() and tokenizer_file.read_bytes() != old_tokenizer:
        table.unlink()
        return True
    return False
