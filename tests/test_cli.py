"""The `infill` command: completions from the shipped models, clear errors on bad input."""

import json

import pytest

from infill.cli import EXAMPLE, main, split_at

SPECIAL = ("<|end|>", "<|pad|>", "<|mask|>", "<|prefix|>", "<|suffix|>", "<|middle|>")


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_split_at_uses_one_based_lines_and_columns():
    assert split_at("ab\ncd", 2, 2) == ("ab\nc", "d")
    assert split_at("ab\ncd", 1, 3) == ("ab", "\ncd")


@pytest.mark.parametrize("engine", ["speculative", "diffusion"])
def test_complete_json_from_each_engine(capsys, engine):
    code, out, _ = run(capsys, "complete", str(EXAMPLE), "--line", "12", "--col", "16",
                       "--engine", engine, "--json", "--device", "cpu")
    assert code == 0
    result = json.loads(out)
    assert set(result) >= {"completion", "engine", "model", "tokens", "forwards", "ms"}
    assert result["engine"] == engine and result["forwards"] >= 1
    assert result["model"].startswith("infill-default/")
    assert not any(token in result["completion"] for token in SPECIAL)


@pytest.mark.parametrize("engine", ["speculative", "diffusion"])
def test_complete_json_lists_the_candidates(capsys, engine):
    code, out, _ = run(capsys, "complete", str(EXAMPLE), "--line", "12", "--col", "16",
                       "--engine", engine, "--json", "--device", "cpu", "--temperature", "1.5",
                       "--top-p", "0.95", "--candidates", "3")
    assert code == 0
    result = json.loads(out)
    texts = [c["completion"] for c in result["candidates"]]
    assert 1 <= len(texts) <= 3 and len(set(texts)) == len(texts)
    assert result["completion"] == texts[0]


def test_demo_prints_both_engines(capsys):
    code, out, _ = run(capsys, "demo", "--device", "cpu")
    assert code == 0
    assert "speculative" in out and "diffusion" in out


@pytest.mark.parametrize("argv, message", [
    (["complete", "/no/such/file.py", "--line", "1", "--col", "1"], "no such file"),
    (["complete", str(EXAMPLE), "--line", "999", "--col", "1"], "outside the file"),
    (["complete", str(EXAMPLE), "--line", "1", "--col", "999"], "outside line 1"),
    (["complete", str(EXAMPLE), "--line", "1", "--col", "1", "--max-tokens", "0"], "max_tokens"),
    (["complete", str(EXAMPLE), "--line", "1", "--col", "1", "--candidates", "0"], "candidates"),
    (["complete", str(EXAMPLE), "--line", "1", "--col", "1", "--top-p", "0"], "top_p"),
    (["complete", str(EXAMPLE), "--line", "1", "--col", "1", "--engine", "speculative",
      "--target", "/no/model"],
     "does not exist"),
    (["complete", str(EXAMPLE), "--line", "1", "--col", "1", "--engine", "diffusion",
      "--diffusion", str(EXAMPLE.parent)], "no config.json"),
])
def test_bad_input_is_one_clear_line_and_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("infill: error:") and message in err
    assert err.count("\n") == 1


def test_unknown_engine_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["complete", str(EXAMPLE), "--line", "1", "--col", "1", "--engine", "magic"])
    assert exit_info.value.code == 2


def test_not_utf8_file(capsys, tmp_path):
    path = tmp_path / "binary.py"
    path.write_bytes(b"\xff\xfe\x00bad")
    code, _, err = run(capsys, "complete", str(path), "--line", "1", "--col", "1")
    assert code == 2 and "not UTF-8" in err


def test_the_command_line_builds_without_tree_sitter_pygls_or_rapidfuzz():
    """The GPU machine trains and benchmarks with `infill ...` and has none of them."""
    import subprocess
    import sys

    code = (
        "import builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('tree_sitter', 'pygls', 'rapidfuzz', 'lsprotocol'):\n"
        "        raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from infill.cli import build_parser\n"
        "build_parser().parse_args(['train', 'ar', '--data', 'd', '--out', 'o'])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_serve_starts_without_importing_torch():
    """An editor waits on `infill serve`'s first answer; torch loads later, with the models."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from infill.cli import build_serve_parser\n"
            "args = build_serve_parser().parse_args(['serve', '--device', 'cpu', '--target', 'T'])\n"
            "import lsp_server.server\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert (args.device, args.target) == ('cpu', 'T')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
