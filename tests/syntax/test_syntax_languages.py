"""language_for: LSP languageIds, aliases and file extensions to cached grammars."""

import pytest

from infill.syntax import language_for
from infill.syntax.languages import known_languages


@pytest.mark.parametrize(
    "language_id, name",
    [
        ("python", "python"),
        ("javascript", "javascript"),
        ("javascriptreact", "javascript"),
        ("typescript", "typescript"),
        ("typescriptreact", "tsx"),
        ("go", "go"),
        ("rust", "rust"),
        ("java", "java"),
        ("c", "c"),
        ("cpp", "cpp"),
        ("Python", "python"),
        ("py", "python"),
        ("js", "javascript"),
        ("jsx", "javascript"),
        ("ts", "typescript"),
        ("tsx", "tsx"),
        ("golang", "go"),
        ("rs", "rust"),
        ("c++", "cpp"),
    ],
)
def test_language_ids(language_id, name):
    assert language_for(language_id).name == name


@pytest.mark.parametrize(
    "path, name",
    [
        ("a.py", "python"),
        ("stubs/a.pyi", "python"),
        ("a.js", "javascript"),
        ("a.mjs", "javascript"),
        ("a.cjs", "javascript"),
        ("App.jsx", "javascript"),
        ("a.ts", "typescript"),
        ("a.mts", "typescript"),
        ("App.tsx", "tsx"),
        ("main.go", "go"),
        ("lib.rs", "rust"),
        ("Main.java", "java"),
        ("a.c", "c"),
        ("a.h", "cpp"),
        ("a.cc", "cpp"),
        ("a.cpp", "cpp"),
        ("a.cxx", "cpp"),
        ("a.hpp", "cpp"),
        ("a.hh", "cpp"),
        ("/abs/dir.with.dots/FILE.PY", "python"),
    ],
)
def test_extensions(path, name):
    assert language_for(None, path).name == name


def test_unknown_is_none():
    assert language_for(None) is None
    assert language_for("") is None
    assert language_for("plaintext") is None
    assert language_for("plaintext", "notes.txt") is None
    assert language_for(None, "Makefile") is None


def test_language_id_wins_over_the_path():
    assert language_for("python", "a.js").name == "python"
    assert language_for("markdown", "a.rs").name == "rust"


def test_languages_are_cached_and_parse():
    assert language_for("python") is language_for(None, "x.py")
    for name in known_languages():
        language = language_for(name)
        assert language.name == name
        tree = language.parse(b"")
        assert tree.root_node is not None


def test_react_ids_get_grammars_that_parse_jsx():
    source = b"const a = <div>{x}</div>;\n"
    assert not language_for("typescriptreact").parse(source).root_node.has_error
    assert not language_for("javascriptreact").parse(source).root_node.has_error
    assert not language_for("typescript").parse(b"let x = <number>y;\n").root_node.has_error
