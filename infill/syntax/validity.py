"""Is prefix + completion + suffix free of syntax errors that prefix + suffix did not have?

Documents being edited are usually broken somewhere, so "no error at all" would reject every
completion in a file with one typo 200 lines up. Instead the errors of the document with the
completion are matched, one to one, against those of the document without it:

1. Errors away from the cursor keep their place: an old error before the cursor stays where it
   was, one after it moves right by the completion's length, one around the cursor grows by it.
   A new error with exactly such a counterpart is old.
2. Errors at the cursor (whitespace around it counts) may move and change as text is typed into
   them. A leftover error is old when it is the same problem as a leftover old error there:
   - an ERROR still covers the old ERROR's text (an insertion removes none of it);
   - a MISSING node touches the insertion and belongs to the same construct as the old one (its
     parent starts at the same place), or to a construct that starts in the old text of an old
     ERROR (the parser now understands that text, but it is unfinished, as it was).
   A MISSING ")" for a call the completion itself opened is therefore new.
3. A leftover error inside the old text of an old ERROR is old too: that text was broken already,
   and error recovery may now report it as several errors (C macros used as statements do this).
   Neither the error nor its construct may lie in the inserted text.
4. Everything left is new, and the completion is invalid.

tree-sitter-python accepts a block header with nothing indented under it (`if x:` then a dedent)
as an empty block. Near the cursor those count as "MISSING block" errors, so truncation does not
stop right after `for i in range(n):`.

Where old errors had to excuse new ones (rules 2 and 3), or the completion lies inside an ERROR
node (text tree-sitter effectively skipped), the grammar's verdict is vague, so the grammar-free
bracket rule (the same matching, on unmatched brackets) must agree as well.

Speed: prefix + suffix is parsed once per (language, prefix, suffix), cut to a window of whole
statements around the cursor (`_window`), and cached. Each candidate is then an edit of a copy of
the window's tree plus an incremental reparse: a tenth of a millisecond in a 2,000-line file
against several for a full parse (`python -m infill.syntax.bench`). When a new error reaches the
end of the window, the completion left something open that the rest of the file might close, and
the whole document decides.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import tree_sitter

from .brackets import token_style, unmatched_brackets
from .languages import Language, resolve

# Above this size a document is judged by the grammar-free rules only: the first parse of a
# multi-megabyte buffer would cost the request its latency budget.
MAX_PARSE_BYTES = 4 * 1024 * 1024
# The grammar-free rules look at this many characters on either side of the cursor: enough for
# the brackets around it, while a scan of a whole large file would cost milliseconds.
GENERIC_WINDOW_CHARS = 8_000
_CACHE_SIZE = 16


class ErrorSpan(NamedTuple):
    """A syntax error in byte offsets of the UTF-8 document; kind is "ERROR" or "MISSING <what>"."""

    start_byte: int
    end_byte: int
    kind: str


@dataclass(frozen=True)
class SyntaxVerdict:
    valid: bool
    new_errors: tuple[ErrorSpan, ...] = ()
    reason: str = ""


def check(prefix: str, completion: str, suffix: str, language: Language | str | None) -> SyntaxVerdict:
    """Judge `completion` inserted between `prefix` and `suffix` (see the module docstring).

    `language` is a Language from `language_for` (or a languageId). `new_errors` are positions in
    the UTF-8 bytes of prefix + completion + suffix. With language None the grammar-free bracket
    rule decides (new_errors is then empty).
    """
    language = resolve(language)
    if not completion:
        return SyntaxVerdict(True, (), "empty completion")
    if language is None:
        return generic_check(prefix, completion, suffix)
    base = _base_document(language, prefix, suffix)
    inserted = _encode(completion)
    if base is None or len(base.before) + len(inserted) + len(base.after) > MAX_PARSE_BYTES:
        return generic_check(prefix, completion, suffix, token_style(language))

    new, vague = _judge(language, base, inserted)
    if new and base.partial and any(error.end_byte >= base.last_code_end(len(inserted)) for error in new):
        # Something the completion left open reaches the window's end; past it, the rest of the
        # document may close it (a completion can join pieces of a broken file). Ask the whole file.
        base = _base_document(language, prefix, suffix, whole=True)
        new, vague = _judge(language, base, inserted)
    if new:
        kinds = ", ".join(sorted({error.kind for error in new}))
        in_document = tuple(
            ErrorSpan(e.start_byte + base.offset, e.end_byte + base.offset, e.kind) for e in new
        )
        return SyntaxVerdict(False, in_document, f"{len(new)} new syntax error(s): {kinds}")
    if vague:  # the bracket rule looks at the same window
        before, after = base.before.decode(errors="replace"), base.after.decode(errors="replace")
        verdict = generic_check(before, completion, after, token_style(language))
        return SyntaxVerdict(verdict.valid, (), "next to an existing parse error; " + verdict.reason)
    return SyntaxVerdict(True, (), "no new syntax errors")


def _judge(language: Language, base: _BaseDocument, inserted: bytes) -> tuple[list[ErrorSpan], bool]:
    """The new errors of the insertion (window coordinates), and whether the grammar's verdict is
    vague: old errors had to excuse new ones (rules 2, 3), or the insertion lies in an ERROR."""
    gap, end = len(base.before), len(base.before) + len(inserted)
    tree = _parse_with_insertion(language, base, inserted)
    errors = _find_errors(tree.root_node)
    errors += _empty_bodies(language, tree, gap - base.space_before, end + base.space_after)
    new, excused = _unmatched_errors(base, errors, len(inserted))
    in_error = any(
        e.span.kind == "ERROR" and e.span.start_byte < end and e.span.end_byte > gap for e in errors
    )
    return new, bool(excused) or in_error


def generic_check(prefix: str, completion: str, suffix: str, style: str = "generic") -> SyntaxVerdict:
    """Grammar-free rule: the completion must not leave a bracket unmatched that was not before.

    Unmatched ()[]{} outside strings are found in a window around the cursor with and without the
    completion and matched by position, as syntax errors are: a completion that closes a bracket
    the prefix left open is fine; one that opens a bracket nothing closes, or closes one the
    suffix closes as well (the suffix's closer is then unmatched), is not.
    """
    before = _line_aligned_tail(prefix, GENERIC_WINDOW_CHARS)
    after = _line_aligned_head(suffix, GENERIC_WINDOW_CHARS)
    gap, inserted = len(before), len(completion)
    old = Counter(i if i < gap else i + inserted for i in _unmatched_without(before, after, style))
    new = []
    for index in unmatched_brackets(before + completion + after, style):
        if old[index]:
            old[index] -= 1
        else:
            new.append(index)
    if new:
        return SyntaxVerdict(False, (), f"{len(new)} new unmatched bracket(s)")
    return SyntaxVerdict(True, (), "no new unmatched brackets")


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _unmatched_without(before: str, after: str, style: str) -> tuple[int, ...]:
    """Unmatched brackets of the text without the completion: the same for every candidate."""
    return tuple(unmatched_brackets(before + after, style))


def collect_errors(node: tree_sitter.Node) -> list[ErrorSpan]:
    """ERROR and MISSING nodes under `node`, outermost only, sorted by position."""
    return [found.span for found in _find_errors(node)]


class _Found(NamedTuple):
    span: ErrorSpan
    # Start of the construct the error belongs to: the ERROR itself, or the parent of a MISSING
    # node. Rule 2 uses it to tell "the same unfinished construct" from a new one.
    anchor: int


def _find_errors(node: tree_sitter.Node) -> list[_Found]:
    found: list[_Found] = []
    stack = [node]
    while stack:  # only subtrees that contain errors are entered
        node = stack.pop()
        if node.is_error:
            found.append(_Found(ErrorSpan(node.start_byte, node.end_byte, "ERROR"), node.start_byte))
        elif node.is_missing:
            found.append(
                _Found(ErrorSpan(node.start_byte, node.end_byte, "MISSING " + node.type), _parent_start(node))
            )
        elif node.has_error:
            stack.extend(node.children)
    found.sort()
    return found


def _empty_bodies(language: Language, tree: tree_sitter.Tree, start: int, end: int) -> list[_Found]:
    """Python's empty blocks between `start` and `end`, reported as "MISSING block"."""
    query = language.body_query()
    if query is None:
        return []
    cursor = tree_sitter.QueryCursor(query)
    cursor.set_byte_range(max(0, start - 1), end + 1)
    return [
        _Found(ErrorSpan(node.start_byte, node.end_byte, "MISSING block"), _parent_start(node))
        for node in cursor.captures(tree.root_node).get("body", [])
        if node.child_count == 0 and start <= node.start_byte <= end
    ]


def _parent_start(node: tree_sitter.Node) -> int:
    parent = node.parent
    return parent.start_byte if parent is not None else node.start_byte


# -- the document without the completion ------------------------------------------------------


@dataclass(frozen=True)
class _BaseDocument:
    """prefix + suffix, cut to the window around the cursor that checks reparse (see _window)."""

    offset: int  # where the window starts in the UTF-8 document
    before: bytes  # window text before the cursor
    after: bytes  # window text after the cursor
    tree: tree_sitter.Tree  # of before + after
    errors: tuple[_Found, ...]  # in window coordinates, as everything below
    cursor_point: tuple[int, int]  # (row, byte column) of the cursor, as tree.edit wants it
    # Whitespace around the cursor: errors there still "touch" the cursor (rule 2).
    space_before: int
    space_after: int
    partial: bool  # the window is less than the whole document

    def last_code_end(self, inserted: int) -> int:
        """Where the window's text ends, trailing whitespace aside, once `inserted` bytes go in."""
        return len(self.before) + inserted + len(self.after.rstrip())


_cache: OrderedDict[tuple[str, str, str, bool], _BaseDocument | None] = OrderedDict()
_cache_lock = threading.Lock()


def _base_document(language: Language, prefix: str, suffix: str, whole: bool = False) -> _BaseDocument | None:
    """Parse prefix + suffix once; candidates for the same cursor reuse it. None when too large.

    The window is the whole document when `whole` is set."""
    key = (language.name, prefix, suffix, whole)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    before, after = _encode(prefix), _encode(suffix)
    base = None
    if len(before) + len(after) <= MAX_PARSE_BYTES:
        base = _make_base(language, before, after, whole)
    with _cache_lock:
        _cache[key] = base
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return base


def _make_base(language: Language, before: bytes, after: bytes, whole: bool) -> _BaseDocument:
    gap = len(before)
    space_before = gap - len(before.rstrip())
    space_after = len(after) - len(after.lstrip())
    document = before + after
    tree = language.parse(document)
    start, end = 0, len(document)
    if not whole:
        start, end = _window(language, tree.root_node, document, gap - space_before, gap + space_after)
    partial = (start, end) != (0, len(document))
    if partial:
        before, after = document[start:gap], document[gap:end]
        tree = language.parse(before + after)
    cursor = len(before)
    errors = _find_errors(tree.root_node)
    errors += _empty_bodies(language, tree, cursor - space_before, cursor + space_after)
    return _BaseDocument(
        start, before, after, tree, tuple(errors), _end_point(before), space_before, space_after, partial
    )


# Python windows narrower than a top-level statement only when that statement is larger than this.
_WINDOW_BYTES = 8 * 1024


def _window(
    language: Language, root: tree_sitter.Node, document: bytes, zone_start: int, zone_end: int
) -> tuple[int, int]:
    """The byte range checks reparse: the statements around the cursor, one more on either side.

    A completion only changes how the rest of the file parses by leaving something open (a
    bracket, a string, a block), and that shows up as an error at the window's end as well; so
    errors outside the window cannot be new. Windows start and end at top-level statements, where
    the parser is in its initial state, unless error recovery has cut the code there into pieces
    (an ERROR among the statements around the cursor): a completion may join the pieces again,
    so the whole document is parsed. Python also allows windows of statements inside a block,
    because tree-sitter-python parses uniformly indented code like top-level code; that matters
    because its incremental reparse redoes everything after the edit (up to half a file), while a
    small window costs a fraction of a millisecond. Brace languages reparse incrementally in well
    under a millisecond, so their windows stay at the top level.
    """
    statements = root.children
    window = None
    while statements and not root.is_error:
        first, last = _statements_around(statements, zone_start, zone_end)
        if any(node.is_error for node in statements[max(first - 1, 0) : last + 2]):
            break  # error recovery cut a construct into pieces here: these boundaries are not real
        window = statements[first].start_byte, statements[last].end_byte
        if language.name != "python" or window[1] - window[0] <= _WINDOW_BYTES:
            break
        block = _block_holding(statements[first : last + 1], zone_start, zone_end)
        statements = block.children if block is not None else []
    if window is None:
        return 0, len(document)
    start, end = min(window[0], zone_start), max(window[1], zone_end)
    return document.rfind(b"\n", 0, start) + 1, end  # from a line start: indentation is syntax


def _statements_around(statements: list[tree_sitter.Node], zone_start: int, zone_end: int) -> tuple[int, int]:
    touching = [
        i for i, node in enumerate(statements) if node.start_byte <= zone_end and node.end_byte >= zone_start
    ]
    if touching:
        first, last = touching[0], touching[-1]
    else:  # between two statements
        last = next((i for i, node in enumerate(statements) if node.start_byte > zone_end), len(statements))
        first = last - 1
    return max(first - 1, 0), min(last + 1, len(statements) - 1)


def _block_holding(
    statements: list[tree_sitter.Node], zone_start: int, zone_end: int
) -> tree_sitter.Node | None:
    """The outermost Python `block` strictly inside one of `statements` that holds the zone."""
    node = next((s for s in statements if s.start_byte < zone_start and s.end_byte > zone_end), None)
    while node is not None:
        if node.type == "block" and node.children:
            return node
        node = next((c for c in node.children if c.start_byte < zone_start and c.end_byte >= zone_end), None)
    return None


def _parse_with_insertion(language: Language, base: _BaseDocument, inserted: bytes) -> tree_sitter.Tree:
    """Reparse incrementally: tell a copy of the old tree about the insertion, then reuse it."""
    gap = len(base.before)
    row, column = base.cursor_point
    lines = inserted.count(b"\n")
    if lines:
        new_end = (row + lines, len(inserted) - inserted.rfind(b"\n") - 1)
    else:
        new_end = (row, column + len(inserted))
    tree = base.tree.copy()  # the cached tree must stay the tree of prefix + suffix
    tree.edit(
        start_byte=gap,
        old_end_byte=gap,
        new_end_byte=gap + len(inserted),
        start_point=base.cursor_point,
        old_end_point=base.cursor_point,
        new_end_point=new_end,
    )
    return language.parse(base.before + inserted + base.after, tree)


# -- matching errors with and without the completion -------------------------------------------


def _unmatched_errors(
    base: _BaseDocument, errors: list[_Found], inserted: int
) -> tuple[list[ErrorSpan], list[ErrorSpan]]:
    """(new errors, errors excused by rules 2 and 3) of the window with the insertion."""
    gap = len(base.before)

    # Rule 1: exact counterparts after shifting old errors over the insertion.
    expected: dict[ErrorSpan, list[_Found]] = {}
    for old in base.errors:
        expected.setdefault(_shifted(old.span, gap, inserted), []).append(old)
    leftover = []
    for error in errors:
        if expected.get(error.span):
            expected[error.span].pop()
        else:
            leftover.append(error)
    if not leftover:
        return [], []

    # Rule 2: the same problem at the cursor, moved or changed by the typing.
    at_cursor = [
        old
        for olds in expected.values()
        for old in olds
        if _touches(old.span, gap - base.space_before, gap + base.space_after)
    ]
    insertion = (gap - base.space_before, gap + inserted + base.space_after)
    still_new = []
    for error in leftover:
        same = next((old for old in at_cursor if _same_problem(old, error, gap, inserted, insertion)), None)
        if same is None:
            still_new.append(error)
        else:
            at_cursor.remove(same)

    # Rule 3: an old ERROR that now parses differently (one region of broken code, often macros,
    # reported as several errors) still covers text that was broken before the completion.
    old_errors = [
        _shifted(old.span, gap, inserted)
        for olds in expected.values()
        for old in olds
        if old.span.kind == "ERROR"
    ]
    new = [
        e.span for e in still_new if not any(_inside_old_text(e, old, gap, inserted) for old in old_errors)
    ]
    return new, [error.span for error in leftover if error.span not in new]


def _same_problem(old: _Found, error: _Found, gap: int, inserted: int, insertion: tuple[int, int]) -> bool:
    old_span = _shifted(old.span, gap, inserted)
    if error.span.kind == "ERROR":
        return old_span.kind == "ERROR" and _touches(error.span, old_span.start_byte, old_span.end_byte)
    if not _touches(error.span, *insertion):
        return False
    if old_span.kind == "ERROR":  # ... in a construct that starts in the old text, not the new
        in_insertion = gap <= error.anchor < gap + inserted
        return old_span.start_byte <= error.anchor <= old_span.end_byte and not in_insertion
    return old_span.kind == error.span.kind and error.anchor == _shifted_offset(old.anchor, gap, inserted)


def _inside_old_text(error: _Found, old: ErrorSpan, gap: int, inserted: int) -> bool:
    """Is `error` within `old`, and neither it nor its construct in the inserted bytes?"""
    span = error.span
    within = old.start_byte <= span.start_byte and span.end_byte <= old.end_byte
    overlaps_insertion = span.start_byte < gap + inserted and span.end_byte > gap
    in_insertion = overlaps_insertion or gap <= error.anchor < gap + inserted
    return within and not in_insertion


def _shifted(error: ErrorSpan, gap: int, inserted: int) -> ErrorSpan:
    """Where an error of prefix + suffix sits once `inserted` bytes go in at `gap`."""
    start, end, kind = error
    if end < gap or (end == gap and start < gap):
        return error  # wholly before the cursor
    if start >= gap:
        return ErrorSpan(start + inserted, end + inserted, kind)  # wholly after it
    return ErrorSpan(start, end + inserted, kind)  # around it: the insertion lands inside


def _shifted_offset(offset: int, gap: int, inserted: int) -> int:
    return offset if offset < gap else offset + inserted


def _touches(error: ErrorSpan, start: int, end: int) -> bool:
    return error.start_byte <= end and error.end_byte >= start


# -- small helpers ----------------------------------------------------------------------------


def _encode(text: str) -> bytes:
    # Lone surrogates (possible in text that came through UTF-16) must not make encoding fail.
    return text.encode("utf-8", errors="replace")


def _end_point(data: bytes) -> tuple[int, int]:
    newline = data.rfind(b"\n")
    return data.count(b"\n"), len(data) - newline - 1


def _line_aligned_tail(text: str, size: int) -> str:
    """The last `size` characters, starting at a line start so no string literal is cut in two."""
    if len(text) <= size:
        return text
    tail = text[-size:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if newline >= 0 else tail


def _line_aligned_head(text: str, size: int) -> str:
    if len(text) <= size:
        return text
    head = text[:size]
    newline = head.rfind("\n")
    return head[:newline] if newline >= 0 else head
