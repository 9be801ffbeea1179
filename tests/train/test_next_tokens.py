"""`infill train next-tokens`: the corpus's likeliest next tokens, counted with a model's own
tokenizer and kept beside the model, where loading finds it."""

import shutil

import pytest

from infill.cli import main
from infill.models.loading import DEFAULT_MODELS, ModelError, NEXT_TOKENS_FILE, load_next_tokens

CODE = '''import os


def walk(root):
    """Every file below root, sorted."""
    found = []
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            found.append(os.path.join(folder, name))
    return sorted(found)


def count(root):
    return len(walk(root))
'''


def test_the_table_is_counted_on_training_files_and_found_beside_the_model(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for f in DEFAULT_MODELS["target"].iterdir():  # the tokenizer and config, no weights
        if f.name.startswith("tokenizer") or f.name == "config.json":
            shutil.copy(f, model / f.name)
    roots = tmp_path / "site"
    for package in ("alpha", "beta", "click"):  # click: held out, never counted
        (roots / package).mkdir(parents=True)
        (roots / package / "util.py").write_text(CODE.replace("root", f"{package}_root"))
    assert main(["train", "next-tokens", "--model", str(model), "--roots", str(roots),
                 "--min-count", "1", "--files", "10"]) == 0
    assert "\"files\": 2" in capsys.readouterr().out  # alpha and beta: click is held out
    table = load_next_tokens(model)
    from infill.models.loading import load_tokenizer
    ids = load_tokenizer(model)("for folder, _, names in os.walk(alpha_root)")["input_ids"]
    assert table.guesses(ids[0], ids[1])[0][:2] == ids[2:4]  # the likeliest guess, then its own

    with pytest.raises(ModelError, match="past the model's 10: another model's table"):
        load_next_tokens(model, vocab=10)
    (model / NEXT_TOKENS_FILE).write_bytes(b"broken")
    with pytest.raises(ModelError, match="infill train next-tokens"):
        load_next_tokens(model)
    assert load_next_tokens(tmp_path) is None  # a model without one drafts without


def test_the_shipped_target_has_its_table():
    table = load_next_tokens(DEFAULT_MODELS["target"])
    assert table is not None and len(table.pairs) > 10_000
