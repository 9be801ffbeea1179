"""Editor traces: made from real source files, replayed against a real server, reported.

    infill trace make FILE... -o trace.jsonl [--mode type|edit] [--speed MS] [--seed N]
    infill trace replay trace.jsonl --report DIR [--server CMD] [--debounce MS]
    infill trace report DIR

A trace is JSON Lines, one event per line, in time order. Every event has `type` and `t`, the
milliseconds since the trace began (non-decreasing). Positions are LSP positions: 0-based
`line` and `character` counted in UTF-16 code units, as LSP's default `positionEncoding` has it.

    {"type": "open", "t": 0, "uri": "file:///src/app.py", "languageId": "python", "version": 1,
     "text": "import os\\n", "source": "/src/app.py", "mode": "type", "speedMs": 120, "seed": 0}
    {"type": "change", "t": 131.5, "uri": "file:///src/app.py",
     "contentChanges": [{"range": {"start": {"line": 1, "character": 0},
                                   "end": {"line": 1, "character": 0}}, "text": "d"}]}
    {"type": "request", "t": 131.5, "uri": "file:///src/app.py",
     "position": {"line": 1, "character": 1}, "trigger": "automatic"}
    {"type": "pause", "t": 1480.2, "ms": 2210.0, "reason": "think"}

- `open`: the document as the editor opens it (`textDocument/didOpen`); `source`, `mode`,
  `speedMs` and `seed` say how `trace make` made it (informational).
- `change`: one edit, exactly the `contentChanges` of a `textDocument/didChange` (ranged,
  applied in order). A keystroke is one change; so is a deletion of a selection, and an Enter
  with the editor's auto-indent (the line break and the next line's indentation at once).
- `request`: a moment at which the editor wants a suggestion at `position` (after every
  keystroke, and after a deletion). The trace does not decide when a request is *sent*: the
  replay does, in one place (`replay.Editor`), like an editor's client: it sends
  `textDocument/inlineCompletion` `--debounce` ms after the request event unless another change
  came first, and sends `$/cancelRequest` for a request still in flight when a change comes
  (or another document is opened).
- `pause`: the typist stops for `ms` (at a line end, or to think). Informational: the next
  event's `t` already includes it.

Replaying the `change` events over the `open` text gives the file back (`format.final_texts`).
What the user is about to type at a request is read from the later changes
(`format.future_typing`): that is how a suggestion's acceptance is simulated.

The package imports nothing itself: `infill` builds its command line from `traces.cli` on
machines without tree-sitter too (the GPU machine trains there).
"""
