"""Languages the syntax guard knows: LSP languageIds and file extensions -> tree-sitter grammars.

Grammars come from the official per-language wheels (`tree-sitter-python`, ...), never from
`tree-sitter-language-pack` (>= 1.0 downloads grammars at run time). A grammar is imported the first
time a document of that language is seen, so a server that only edits Python never loads the C++
grammar.
"""

from __future__ import annotations

import importlib
import os
import threading

import tree_sitter

# name -> (module of the grammar wheel, function in it returning the grammar, lexical style).
# The style picks the grammar-free rules (see brackets.py): "python" blocks end at a dedent, the
# others at their closing `}`; "js" quotes strings with ' as well, "c" uses ' for characters only.
_GRAMMARS: dict[str, tuple[str, str, str]] = {
    "python": ("tree_sitter_python", "language", "python"),
    "javascript": ("tree_sitter_javascript", "language", "js"),  # includes JSX
    "typescript": ("tree_sitter_typescript", "language_typescript", "js"),
    "tsx": ("tree_sitter_typescript", "language_tsx", "js"),
    "go": ("tree_sitter_go", "language", "c"),
    "rust": ("tree_sitter_rust", "language", "c"),
    "java": ("tree_sitter_java", "language", "c"),
    "c": ("tree_sitter_c", "language", "c"),
    "cpp": ("tree_sitter_cpp", "language", "c"),
}

# LSP languageIds (VS Code / Neovim spellings) and common aliases.
_LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "python3": "python",
    "py": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "js": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "typescript": "typescript",
    "ts": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
    "go": "go",
    "golang": "go",
    "rust": "rust",
    "rs": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "cxx": "cpp",
    "cc": "cpp",
}

# `.h` goes to C++: that is what VS Code and Neovim assume, and the C++ grammar parses nearly all C,
# while the C grammar fails on every C++ header.
_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "cpp",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
}


class Language:
    """One grammar plus what truncation needs to know about the language.

    Parsers are not thread-safe, so each thread gets its own (the server may check candidates from
    an executor while a batch job runs in another thread).
    """

    def __init__(self, name: str, grammar: tree_sitter.Language, style: str):
        self.name = name
        self.grammar = grammar
        self.style = style
        # Where a block ends: at a dedent (Python) or at the `}` that closes it.
        self.block_style = "indent" if style == "python" else "brace"
        self._local = threading.local()
        self._body_query: tree_sitter.Query | None = None

    def parse(self, source: bytes, old_tree: tree_sitter.Tree | None = None) -> tree_sitter.Tree:
        parser = getattr(self._local, "parser", None)
        if parser is None:
            parser = self._local.parser = tree_sitter.Parser(self.grammar)
        if old_tree is None:
            return parser.parse(source)
        return parser.parse(source, old_tree)

    def body_query(self) -> tree_sitter.Query | None:
        """Python only: a query for block bodies. tree-sitter-python accepts `if x:` with nothing
        indented under it as an empty `block` instead of an error, so validity looks for those."""
        if self.name != "python":
            return None
        if self._body_query is None:
            self._body_query = tree_sitter.Query(self.grammar, "(block) @body")
        return self._body_query

    def __repr__(self) -> str:
        return f"Language({self.name!r})"


_loaded: dict[str, Language] = {}
_lock = threading.Lock()


def language_name(language_id: str | None, path: str | None = None) -> str | None:
    """The canonical grammar name for an LSP languageId, else for the path's extension."""
    if language_id:
        name = _LANGUAGE_IDS.get(language_id.strip().lower())
        if name:
            return name
    if path:
        _, ext = os.path.splitext(path)
        return _EXTENSIONS.get(ext.lower())
    return None


def language_for(language_id: str | None, path: str | None = None) -> Language | None:
    """The cached Language for a languageId (or, failing that, a file path); None when unknown."""
    name = language_name(language_id, path)
    if name is None:
        return None
    with _lock:
        language = _loaded.get(name)
        if language is None:
            module_name, function_name, style = _GRAMMARS[name]
            module = importlib.import_module(module_name)
            grammar = tree_sitter.Language(getattr(module, function_name)())
            language = _loaded[name] = Language(name, grammar, style)
    return language


def resolve(language: Language | str | None) -> Language | None:
    """Accept a Language or a languageId wherever a Language is expected."""
    return language_for(language) if isinstance(language, str) else language


def known_languages() -> list[str]:
    return list(_GRAMMARS)
