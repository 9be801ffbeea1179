"""The Neovim plugin in a real headless Neovim 0.11, against the real server and shipped models.

The model's text differs from spot to spot, so each test asks for a suggestion with the shape it
needs (e.g. several lines) at a few spots and then checks exact properties of what the plugin
does with whatever text came: the buffer after an accept is the buffer before with exactly
that text at the cursor.
"""

from __future__ import annotations

import random
import time

from .conftest import ANSWER_TIMEOUT, READY_TIMEOUT, insert_at, next_line, next_word, start_nvim


def spot(before: str, after: str = "\n") -> tuple[str, int, int]:
    """A file `before` + `after`, the cursor between them."""
    lines = before.split("\n")
    return before + after, len(lines) - 1, len(lines[-1].encode())


# Spots where the shipped models write several lines, then ones where they write one.
FIB = spot("def fib(n):\n    if n < 2:\n        return n\n    ")
MULTILINE = [FIB, spot("def main():\n    "), spot("def is_even(n):\n    "),
             spot("class Point:\n    def __init__(self, x, y):\n        "),
             spot("import argparse\n\n\ndef parse_args():\n    parser = argparse.ArgumentParser()\n    "),
             spot("class Config:\n    def __init__(self, path, name, debug):\n        "),
             spot("def parse(text):\n    result = []\n    for line in text.splitlines():\n        ")]
ANY = MULTILINE + [spot("def total(values):\n    result = 0\n    for v in values:\n        "),
                   spot("for i in range(10):\n    ")]


def events(editor, kind: str) -> int:
    return editor.status()["events"][kind]


def wait_event(editor, kind: str, count: int) -> None:
    editor.nvim.wait_for(f"the server to log {count} {kind!r} events",
                         lambda: events(editor, kind) >= count, ANSWER_TIMEOUT)


def test_ghost_text_appears_and_accept_inserts_exactly_it_as_one_undo_step(editor):
    shown = editor.suggestion(ANY)
    assert shown.get("problem") is None
    row, col = editor.cursor()
    assert (shown["row"], shown["col"]) == (row, col)
    before, accepted = editor.lines(), events(editor, "accepted")

    editor.press("<Tab>")

    after = insert_at(before, row, col, shown["text"])
    assert editor.lines() == after
    last = shown["text"].split("\n")
    assert editor.cursor() == (row + len(last) - 1,
                               (col if len(last) == 1 else 0) + len(last[-1].encode()))
    assert editor.mode() == "i"
    ghost = editor.ghost()  # a new suggestion may come for the new cursor, never the old one
    assert ghost is None or ghost.get("problem") is None
    wait_event(editor, "accepted", accepted + 1)  # the item's command reached the server

    editor.press("<Esc>u")
    assert editor.lines() == before


def test_accept_word_and_accept_line_insert_their_parts(editor):
    def wanted(text: str) -> bool:  # several words on the first line, then two more lines
        lines = text.split("\n")
        return (sum(1 for line in lines if line.strip()) >= 3 and lines[1].strip() != ""
                and next_word(lines[0]) != lines[0])

    shown = editor.suggestion(MULTILINE, wanted, "suggestion of several lines and words")
    before, partial = editor.lines(), events(editor, "partiallyAccepted")
    row, col = editor.cursor()
    rest, inserted, steps = shown["text"], "", 0
    for key, part_of in (("<C-Right>", next_word), ("<C-Right>", next_word),
                         ("<S-Tab>", next_line), ("<S-Tab>", next_line)):
        part = part_of(rest)
        if part == rest:
            break
        editor.press(key)
        inserted, rest, steps = inserted + part, rest[len(part):], steps + 1
        assert editor.lines() == insert_at(before, row, col, inserted), (key, part)
        ghost = editor.ghost()
        assert ghost is not None and ghost["text"] == rest and ghost.get("problem") is None, (key, ghost)
    assert steps >= 3 and "\n" in inserted  # a word, and a line that ended in a line break
    wait_event(editor, "partiallyAccepted", partial + steps)

    editor.press("<Tab>")
    assert editor.lines() == insert_at(before, row, col, shown["text"])
    editor.press("<Esc>" + "u" * (steps + 1))  # each accept is one undo step
    assert editor.lines() == before


def test_dismiss_clears_the_suggestion_until_the_next_edit(editor):
    editor.suggestion(ANY)
    dismissed = events(editor, "dismissed")
    editor.press("<C-]>")
    assert editor.ghost() is None and editor.quiet()  # nothing on screen, nothing in flight
    wait_event(editor, "dismissed", dismissed + 1)
    requests = editor.lua("return infill_test.requests")
    editor.type_text("x")
    editor.nvim.wait_for("a request for the new text", lambda: editor.lua(
        "return infill_test.requests") > requests, ANSWER_TIMEOUT)


def test_next_and_previous_cycle_through_every_engine_s_candidates(editor):
    first = editor.suggestion(ANY)  # FIB first: there the diffusion engine adds a candidate
    answers = editor.lua("return infill_test.answers")
    editor.press("<M-]>")  # asks every engine (an Invoked request), then moves
    editor.wait_answer(answers)
    count = editor.lua("return #require('infill.ghost')._state.shown.items")
    second = editor.ghost()
    assert second.get("problem") is None
    if count == 1:  # the diffusion engine added nothing new: nothing to cycle through
        assert second["text"] == first["text"]
        return
    assert second["text"] != first["text"] and second["hint"] == f" (2/{count})"
    editor.press("<M-[>")
    back = editor.ghost()
    assert back["text"] == first["text"] and back["hint"] == f" (1/{count})"
    editor.press("<M-[>")
    assert editor.ghost()["hint"] == f" ({count}/{count})"  # wraps around


def test_a_stale_answer_is_never_drawn(editor):
    """An answer that arrives after the text changed is dropped, even with text in it: the
    answer is held back while a key is typed, then delivered."""
    for text, line, col in MULTILINE:
        editor.open(text, line, col, hold=True)
        editor.nvim.wait_for("an answer held back", lambda: editor.lua(
            "return #infill_test.held > 0"), ANSWER_TIMEOUT)
        if editor.lua("return infill_test.held[1].items") > 0:
            break
    else:
        raise AssertionError("the shipped models suggested nothing at any spot")
    editor.type_text("#")  # no suggestion starts with a comment sign here
    delivered = editor.lua("return infill_test.release()")
    assert any(d["items"] > 0 and d["stale"] for d in delivered), delivered
    ghost = editor.ghost()
    assert ghost is None or ghost.get("problem") is None
    assert editor.lua("return infill_test.bad_paints") == []


def test_typing_fast_never_leaves_a_stale_suggestion_on_screen(editor):
    """No debounce, so a request goes out on every keystroke and answers race the typing:
    after every key whatever is on screen must be right for the buffer as it is, and so must
    every paint (checked by instrument.lua as it happens)."""
    editor.lua("require('infill.config').options.debounce_ms = 0")
    try:
        editor.open(*FIB)
        shown = editor.wait_answer()
        rng = random.Random(9)
        # the suggestion's first characters (typed through), then text of our own
        typed = (shown["text"][:3] if shown else "") + "total = fib(n - 1) + fib(n - 2)"
        for char in typed:
            editor.type_text(char)
            ghost = editor.ghost()
            assert ghost is None or ghost.get("problem") is None, (char, ghost)
            time.sleep(rng.uniform(0, 0.12))  # a typist's pause (not a wait for a result)
        editor.nvim.wait_for("the last answer", editor.quiet, ANSWER_TIMEOUT)
        ghost = editor.ghost()
        assert ghost is None or ghost.get("problem") is None
        counts = editor.lua("return {infill_test.requests, infill_test.paints, infill_test.bad_paints}")
        assert counts[2] == [] and counts[0] >= 5, counts  # requests, paints, bad paints
    finally:
        editor.lua("require('infill.config').options.debounce_ms = 30")


def test_toggle_off_sends_nothing_and_leaves_the_keys_alone_then_status(editor):
    editor.nvim.command("InfillToggle off")
    try:
        assert said(editor) == "infill: ghost text off"
        editor.open("def f():\n    x = 1", 1, 9)
        editor.type_text(" + 2")
        assert editor.quiet() and editor.lua("return infill_test.requests") == 0
        editor.press("<Tab>")  # no suggestion: Tab is Tab (python's softtabstop makes spaces)
        line = editor.lines()[1]
        assert line.startswith("    x = 1 + 2") and line != "    x = 1 + 2" and line.strip() == "x = 1 + 2"
    finally:
        editor.nvim.command("InfillToggle on")
    editor.type_text("3")
    editor.nvim.wait_for("a request once on again", lambda: editor.lua(
        "return infill_test.requests") > 0, ANSWER_TIMEOUT)

    assert said(editor) == "infill: ghost text on"
    editor.nvim.command("InfillStatus")
    status = said(editor)
    assert "server 0.1.0: ready" in status and "device: cpu" in status, status
    assert "models: diffusion: infill-default/diffusion, speculative: infill-default/target" in status
    assert "ghost text: on (plugin renderer)" in status


def test_checkhealth_reports_ok_for_the_running_server(editor):
    editor.suggestion(ANY)  # at least one completion, for the latency line
    editor.press("<Esc>")
    report = checkhealth(editor.nvim)
    assert_health_ok(report)
    assert "OK latency: median" in report


def test_checkhealth_starts_a_server_of_its_own_when_none_runs(tmp_path):
    nvim = start_nvim(tmp_path)
    try:
        report = checkhealth(nvim, timeout=READY_TIMEOUT + ANSWER_TIMEOUT)
        assert_health_ok(report)
        assert "OK latency: a test completion took" in report
        assert "starting one for this check" in report
    finally:
        nvim.close()


def test_checkhealth_says_when_the_server_is_missing(tmp_path):
    nvim = start_nvim(tmp_path, ["/nonexistent/infill", "serve"])
    try:
        nvim.command(f"edit {tmp_path / 'x.py'}")  # no server to start: one message, no error
        report = checkhealth(nvim)
        assert 'ERROR server not found: "/nonexistent/infill" is not executable' in report, report
        assert nvim.lua("return require('infill.client').get()") is None
        messages = nvim.lua("return infill_test.messages")
        assert [m["message"] for m in messages if "not executable" in m["message"]] != []
    finally:
        nvim.close()


def test_every_lua_module_loads(editor):
    """builtin.lua (Neovim 0.12) cannot run here: at least it must compile."""
    problems = editor.lua("""
        local out = {}
        for _, path in ipairs(vim.api.nvim_get_runtime_file('lua/infill/*.lua', true)) do
          local ok, err = loadfile(path)
          if not ok then out[#out + 1] = err end
        end
        return {#vim.api.nvim_get_runtime_file('lua/infill/*.lua', true), out}""")
    assert problems == [7, []]


def test_empty_server_options_go_out_as_a_json_object(editor):
    encoded = editor.lua("""
        local config = require('infill.config')
        local saved = config.options.server
        config.options.server = {}
        local empty = vim.json.encode(require('infill.client').server_options())
        config.options.server = saved
        return {empty, vim.json.encode(require('infill.client').server_options())}""")
    assert encoded[0] == "{}" and encoded[1].startswith('{"')


def test_text_helpers(editor):
    cases = editor.lua("""
        local t = require('infill.text')
        return {
          t.next_word('foo(bar)'), t.next_word('  (bar)'), t.next_word('\\n    return x'),
          t.next_word('é = 1'), t.next_line('a\\nb'), t.next_line('\\n  b\\nc'), t.next_line('ab'),
          t.units('a😀é', 'utf-16'), t.units('a😀é', 'utf-32'), t.units('a😀é', 'utf-8'),
          t.byte_col('a😀éz', 3, 'utf-16'), t.byte_col('a😀éz', 4, 'utf-16'),
          t.byte_col('a😀éz', 2, 'utf-32'), t.byte_col('ab', 9, 'utf-16'),
          t.expand_tabs('\\tx\\ty', 2, 4),
          t.insert_text('x'), t.insert_text({ kind = 'snippet', value = 'a\\\\b\\\\\\\\c\\\\$' }),
          t.insert_text({ kind = 'snippet', value = 'f(${1:x})' }) == nil,
        }""")
    assert cases == ["foo", "  (", "\n    return", "é", "a", "\n  b", "ab",
                     4, 3, 7, 5, 7, 5, 2, "  x   y", "x", "a\\b\\c$", True]


# --- helpers -------------------------------------------------------------------------------

def said(editor) -> str:
    """The last message shown with vim.notify."""
    return editor.lua("return infill_test.messages[#infill_test.messages].message")


def checkhealth(nvim, timeout: float = ANSWER_TIMEOUT) -> str:
    nvim.command("checkhealth infill", timeout=timeout)
    report = "\n".join(nvim.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, true)"))
    nvim.command("bwipeout")
    return report


def assert_health_ok(report: str) -> None:
    assert "ERROR" not in report, report
    for line in ("OK Neovim 0.11", "OK setup() called", "OK server found", "OK models loaded",
                 "OK device: cpu"):
        assert line in report, (line, report)
