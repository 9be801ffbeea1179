"""Editor traces: making them (the changes give the file back), the replay's decisions
(debounce, cancel, stale, acceptance) against a stand-in client, the report from records alone,
and one short replay against the real server with the shipped models."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from infill.cli import EXAMPLE, main
from infill.traces.format import (Document, TraceError, final_texts, future_typing, read_trace,
                                  typed_chars, write_trace)
from infill.traces.make import keystrokes, make_trace, read_source
from infill.traces.replay import Editor
from infill.traces.report import load, saved_characters, summarize, write_report

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "infill" / "models" / "default"

ODD = ("# -*- coding: utf-8 -*-\r\nclass Café:\r\n    \"\"\"😀 wide 😀\"\"\"\r\n\r\n"
       "    def smile(self, n):\r\n\tif n:\r\n\t\treturn '😀' * n  # 😀😀\r\n    \r\n"
       "        return ''\r\n\r\ndef main():\r\n    print(Café().smile(2))")
JS = """import fs from 'fs';

function total(values) {
  let sum = 0;
  for (const v of values) {
    sum += v;
  }
  return sum;
}

const shout = (s) => {
  return s.toUpperCase() + '!';
};
"""
PLAIN = """section one:
    first line of the body
    second line, longer than the first one
other:
    x
"""


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("sources")
    files = [EXAMPLE, ROOT / "infill" / "traces" / "make.py", ROOT / "lsp_server" / "documents.py"]
    for name, text in (("odd.py", ODD), ("total.js", JS), ("notes.txt", PLAIN)):
        path = folder / name
        path.write_bytes(text.encode("utf-8"))
        files.append(path)
    return files


def uri_of(path: Path) -> str:
    return path.resolve().as_uri()


@pytest.mark.parametrize("mode", ["type", "edit"])
def test_replaying_the_changes_gives_the_file_back(sources, mode, tmp_path):
    for seed in (0, 1):
        for path in sources:
            events = make_trace([path], mode, speed_ms=80, seed=seed)
            write_trace(tmp_path / "t.jsonl", events)
            events = read_trace(tmp_path / "t.jsonl")
            assert final_texts(events) == {uri_of(path): read_source(path)}, (path, seed)
            times = [e["t"] for e in events]
            assert times == sorted(times)
            assert any(e["type"] == "pause" for e in events)
            requests = [e for e in events if e["type"] == "request"]
            assert len(requests) >= typed_chars(events)[0]


def test_type_mode_starts_empty_and_edit_mode_keeps_a_real_suffix(sources):
    for path in sources:
        text = read_source(path)
        typed = make_trace([path], "type", seed=3)
        assert typed[0]["text"] == "" and typed_chars(typed)[1] == len(text)
        edit = make_trace([path], "edit", seed=3)
        assert edit[0]["text"] == text
        deletion = next(e for e in edit if e["type"] == "change")
        start = deletion["contentChanges"][0]["range"]["start"]
        doc = Document(text)
        doc.apply(deletion["contentChanges"][0])
        assert doc.text[doc.offset(start["line"], start["character"]):].strip()  # code after it


def test_edit_mode_retypes_function_bodies_found_by_tree_sitter_or_indentation(sources):
    js, plain = sources[4], sources[5]
    events = make_trace([js], "edit", seed=0, edits=2)
    deleted = [e["contentChanges"][0] for e in events if e["type"] == "change"
               and e["contentChanges"][0]["text"] == ""]
    lines = {(d["range"]["start"]["line"], d["range"]["end"]["line"]) for d in deleted}
    assert lines == {(3, 7), (11, 11)}  # the two function bodies, inside their braces
    assert final_texts(events)[uri_of(js)] == JS
    events = make_trace([plain], "edit", seed=0)
    assert final_texts(events)[uri_of(plain)] == PLAIN


def test_keys_limits_a_trace_and_seeds_make_it_reproducible(sources, tmp_path):
    path = sources[1]
    text = read_source(path)
    events = make_trace([path], "type", seed=5, keys=200)
    final = final_texts(events)[uri_of(path)]
    assert text.startswith(final) and text[len(final)] == "\n"  # stops at a line end
    assert events[0]["text"] and 200 <= typed_chars(events)[0] < 300
    assert events == make_trace([path], "type", seed=5, keys=200)
    assert events != make_trace([path], "type", seed=6, keys=200)
    edit = make_trace([path], "edit", seed=5, keys=150, edits=2)
    assert 0 < typed_chars(edit)[0] <= 300
    both = make_trace(sources[:2], "type", speed_ms=50, seed=0, keys=50)
    assert [e["uri"] for e in both if e["type"] == "open"] == [uri_of(p) for p in sources[:2]]


def test_timing_follows_the_speed_with_pauses_at_line_ends(sources):
    for speed in (60, 250):
        events = make_trace([sources[1]], "type", speed_ms=speed, seed=0, keys=400)
        changes = [e for e in events if e["type"] == "change"]
        gaps = sorted(b["t"] - a["t"] for a, b in zip(changes, changes[1:]))
        assert 0.5 * speed < gaps[len(gaps) // 2] < 1.5 * speed  # the median key
        assert min(gaps) > 0.15 * speed
        pauses = [e for e in events if e["type"] == "pause"]
        assert any(p["reason"] == "line end" for p in pauses)
        assert all(p["ms"] >= 3 * speed for p in pauses)


def test_keystrokes_merge_auto_indent_into_enter():
    assert keystrokes("  if x:\n      y\r\n\tz") == ["  ", "i", "f", " ", "x", ":", "\n      ",
                                                  "y", "\r\n\t", "z"]
    assert "".join(keystrokes(ODD)) == ODD


def test_bad_traces_say_which_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = {"type": "open", "t": 0, "uri": "file:///a.py", "text": ""}
    for bad, message in (
            ({"type": "change", "t": 1, "uri": "file:///b.py", "contentChanges": []}, "not open"),
            ({"type": "pause", "t": -1, "ms": 1}, "t must be"),
            ({"type": "request", "t": 2, "uri": "file:///a.py"}, "position"),
            ({"type": "typo", "t": 2}, "type")):
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(TraceError, match=f"bad.jsonl:2: .*{message}"):
            read_trace(path)


def test_utf16_positions_count_surrogate_pairs():
    doc = Document("a😀b\n")
    doc.apply({"range": {"start": {"line": 0, "character": 3}, "end": {"line": 0, "character": 3}},
               "text": "X"})
    assert doc.text == "a😀Xb\n" and doc.offset(0, 4) == 3


# --- acceptance and the replay's decisions, on a hand-made trace ------------------------------

U = "file:///hand.py"


def insert(t, line, character, text):
    at = {"line": line, "character": character}
    return {"type": "change", "t": t, "uri": U, "contentChanges": [
        {"range": {"start": at, "end": at}, "text": text}]}


def request(t, line, character):
    return {"type": "request", "t": t, "uri": U, "position": {"line": line, "character": character},
            "trigger": "automatic"}


HAND = [
    {"type": "open", "t": 0, "uri": U, "languageId": "python", "version": 1, "text": "import os\n"},
    insert(100, 1, 0, "p"), request(100, 1, 1),                  # 1, 2
    insert(200, 1, 1, "r"), request(200, 1, 2),                  # 3, 4
    insert(300, 1, 2, "int("), request(300, 1, 6),               # 5, 6: a paste of 4 characters
    insert(400, 1, 6, "x"), request(400, 1, 7),                  # 7, 8
    insert(500, 1, 7, ")"), request(500, 1, 8),                  # 9, 10
    {"type": "change", "t": 600, "uri": U, "contentChanges": [   # 11: the line deleted
        {"range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 8}},
         "text": ""}]},
    request(600, 1, 0),                                          # 12
    insert(700, 1, 0, "y"),                                      # 13
]


def test_future_typing_follows_contiguous_insertions_only():
    assert future_typing(HAND, 2) == "rint(x)"
    assert future_typing(HAND, 4) == "int(x)"
    assert future_typing(HAND, 8) == ")"
    assert future_typing(HAND, 10) == ""  # a deletion comes next
    assert future_typing(HAND, 12) == "y"
    assert final_texts(HAND) == {U: "import os\ny"}


class StandInProtocol:
    def __init__(self):
        self.requests, self.notes = {}, []

    def send_request_async(self, method, params, msg_id=None):
        future = asyncio.get_running_loop().create_future()
        self.requests[msg_id] = (params, future)
        return future

    def notify(self, method, params):
        self.notes.append((method, params))


class StandInClient:
    def __init__(self):
        self.protocol, self.changes = StandInProtocol(), []

    def text_document_did_open(self, params):
        self.opened = params

    def text_document_did_change(self, params):
        self.changes.append(params)


class Collect:
    def __init__(self):
        self.lines = []

    def write(self, record):
        self.lines.append(record)


def answer(*texts):
    return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=t) for t in texts])


async def test_the_editor_records_acceptance_staleness_cancels_and_the_cache():
    client, records = StandInClient(), Collect()
    editor = Editor(client, HAND, 0.0, records, ["speculative", "diffusion"], "auto")

    async def ask(index, result=None, then=None):
        editor.send(index)
        _, future = client.protocol.requests[f"r{editor.sent}"]
        if then is not None:
            editor.handle(then, HAND[then])
        future.set_exception(result) if isinstance(result, Exception) else future.set_result(result)
        await asyncio.sleep(0)
        return records.lines[-1]

    editor.handle(0, HAND[0])
    editor.handle(1, HAND[1])
    first = await ask(2, answer("rint("))
    assert first | {"latencyMs": 0} == first | {
        "outcome": "answered", "engine": "speculative", "lines": "single", "accepted": True,
        "charsSaved": 5, "matched": 5, "offset": 11, "superseded": False, "latencyMs": 0}
    editor.handle(3, HAND[3])  # the user types the "r" of the suggestion on screen
    second = await ask(4, answer("int("))
    assert (second["engine"], second["accepted"], second["charsSaved"]) == ("cache", True, 4)
    editor.handle(5, HAND[5])
    third = await ask(6, answer("y)\nz"))
    assert (third["engine"], third["accepted"], third["matched"], third["lines"]) == \
        ("speculative", False, 0, "multi")
    editor.handle(7, HAND[7])
    stale = await ask(8, answer(")"), then=9)  # a keystroke before the answer
    assert (stale["outcome"], stale["superseded"], stale["accepted"]) == ("stale", True, False)
    assert client.protocol.notes[-1] == (types.CANCEL_REQUEST, types.CancelParams(id=stale["id"]))
    cancelled = await ask(10, JsonRpcRequestCancelled(), then=11)
    assert cancelled["outcome"] == "cancelled" and cancelled["superseded"]
    assert [c.text_document.version for c in client.changes] == [2, 3, 4, 5, 6, 7]
    assert editor.route("x)") == "diffusion" and editor.route("   ") == "speculative"

    summary = summarize({"typedChars": 8}, records.lines, None)
    assert summary["requests"] | {"requestEvents": None} == {
        "requestEvents": None, "sent": 5, "answered": 3, "stale": 1, "cancelled": 1, "error": 0,
        "unanswered": 0, "superseded": 2}
    assert summary["cancelledShare"] == 0.4
    assert (summary["shown"], summary["accepted"], summary["typeThrough"]) == (2, 1, 1)
    assert saved_characters(records.lines) == 5  # "rint(" and its rest "int(" overlap
    assert summary["charsSaved"] == 5 and summary["charsSavedShare"] == 0.625
    assert set(summary["latencyMs"]) == {"all", "speculative", "speculative/single",
                                         "speculative/multi", "cache", "cache/single"}


async def test_the_debounce_sends_once_for_a_burst_of_keystrokes():
    client, records = StandInClient(), Collect()
    editor = Editor(client, HAND, 30.0, records, ["speculative"], "auto")
    editor.handle(0, HAND[0])
    for index in range(1, 9):  # four keystrokes 0 ms apart: the timer restarts each time
        editor.handle(index, HAND[index])
    assert editor.sent == 0
    await asyncio.sleep(0.08)
    assert editor.sent == 1 and client.protocol.requests["r1"][0].position.character == 7


async def test_moving_to_another_file_cancels_the_request_left_behind():
    other = {"type": "open", "t": 800, "uri": "file:///other.py", "languageId": "python",
             "version": 1, "text": ""}
    events = HAND + [other, {**insert(900, 0, 0, "z"), "uri": other["uri"]}]
    client, records = StandInClient(), Collect()
    editor = Editor(client, events, 0.0, records, ["speculative"], "auto")
    for index in range(13):
        editor.handle(index, events[index])
    editor.send(12)
    editor.handle(14, events[14])  # the other file is opened before the answer comes
    assert client.protocol.notes == [(types.CANCEL_REQUEST, types.CancelParams(id="r1"))]
    client.protocol.requests["r1"][1].set_result(answer("y"))
    await asyncio.sleep(0)
    assert records.lines[-1]["outcome"] == "stale"


def test_the_report_is_made_from_records_alone(tmp_path):
    lines = [{"kind": "replay", "trace": "t.jsonl", "typedChars": 20, "keystrokes": 20,
              "documents": [{"mode": "type", "speedMs": 60.0}], "device": "cpu"}]
    for i, (ms, outcome, engine, text, accepted) in enumerate([
            (120.0, "answered", "speculative", "foo", True), (300.0, "answered", "diffusion", "a\nb", False),
            (80.0, "stale", "speculative", "", False), (40.0, "cancelled", "diffusion", "", False),
            (1.0, "answered", "cache", "oo", True), (200.0, "answered", "speculative", "", False)]):
        lines.append({"kind": "request", "id": f"r{i}", "sentMs": 100.0 * i, "latencyMs": ms,
                      "outcome": outcome, "superseded": outcome in ("stale", "cancelled"),
                      "engine": engine, "lines": "multi" if "\n" in text else "single" if text else "empty",
                      "text": text, "chars": len(text), "accepted": accepted,
                      "charsSaved": len(text) if accepted else 0, "uri": "file:///a.py",
                      "offset": 10 + i, "line": 0, "character": i})
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines)
                                            + '{"kind": "requ')  # a replay killed mid-line
    assert main(["trace", "report", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["latencyMs"]["all"] | {"mean": 0} == {"n": 4, "p50": 120.0, "p75": 200.0,
                                                         "p95": 300.0, "p99": 300.0, "mean": 0}
    assert summary["latencyMs"]["speculative/single"]["n"] == 1
    assert summary["cancelledShare"] == round(2 / 6, 4)
    assert (summary["shown"], summary["accepted"], summary["typeThrough"]) == (2, 1, 1)
    assert summary["charsSaved"] == 5 and not summary["complete"]  # offsets 10-13, 14-16
    page = (tmp_path / "index.html").read_text()
    for png in ("latency_hist.png", "latency_time.png"):
        assert (tmp_path / png).stat().st_size > 1000 and png in page
    assert main(["trace", "report", str(tmp_path / "nothing")]) == 2


def test_trace_commands_do_not_import_torch(tmp_path):
    code = ("import sys; from infill.cli import main; "
            f"main(['trace', 'make', {str(EXAMPLE)!r}, '-o', {str(tmp_path / 't.jsonl')!r}]); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


# --- a replay against the real server ------------------------------------------------------

def test_a_short_replay_against_the_shipped_models_writes_a_complete_report(tmp_path, capsys):
    if not any((SHIPPED / "target").glob("*.safetensors")):
        pytest.skip(f"no shipped weights in {SHIPPED}")
    trace, report = tmp_path / "trace.jsonl", tmp_path / "report"
    assert main(["trace", "make", str(EXAMPLE), "-o", str(trace), "--mode", "edit",
                 "--speed", "60", "--seed", "1"]) == 0
    events = read_trace(trace)
    assert main(["trace", "replay", str(trace), "--report", str(report), "--debounce", "40",
                 "--options", '{"device": "cpu", "maxTokens": 16}']) == 0
    header, requests, end = load(report)
    assert header["models"] == {"speculative": "infill-default/target",
                                "diffusion": "infill-default/diffusion"}
    assert header["keystrokes"] == typed_chars(events)[0] and end is not None
    assert requests and end["sent"] == len(requests) and end["unanswered"] == 0
    assert all(r["outcome"] in ("answered", "stale", "cancelled") for r in requests)
    assert all(r["latencyMs"] > 0 for r in requests)
    assert end["serverRequests"]["errors"] == 0
    summary = json.loads((report / "summary.json").read_text())
    assert summary["complete"] and summary["requests"]["sent"] == len(requests)
    for name in ("index.html", "latency_hist.png", "latency_time.png", "records.jsonl"):
        assert (report / name).stat().st_size > 0
    assert "p95 ms" in capsys.readouterr().out
