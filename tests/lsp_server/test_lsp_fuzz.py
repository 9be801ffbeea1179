"""Random sessions of edits, requests, cancellations, settings, events and malformed messages
against the whole server (in-process, through its JSON-RPC protocol object, fake engines that
check the cancel token every step).

After each session: every request got exactly one answer (a result, RequestCancelled, or
InvalidParams for malformed params) within a timeout, no handler raised, the server's
documents equal a whole-string reference of the same edits, and nothing is left running or
queued. LSP_FUZZ_EXAMPLES sets the number of sessions (200 by default; 2000 for a long run).
"""

from __future__ import annotations

import asyncio
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pygls.exceptions import FeatureNotificationError, FeatureRequestError

from infill.syntax import positions as reference
from lsp_fakes import FakeEngines
from lsp_inprocess import InProcessClient

EXAMPLES = int(os.environ.get("LSP_FUZZ_EXAMPLES", "200"))
URIS = ["file:///fuzz/a.py", "file:///fuzz/b.js", "untitled:Untitled-1", "file:///never/opened.py"]

text = st.lists(st.sampled_from(["a", " ", "(", ")", "é", "😀", "\n", "\r\n", "\r", "\x00", "中"]),
                max_size=30).map("".join)
uri = st.sampled_from(URIS)
position = st.tuples(st.integers(0, 6), st.integers(0, 12))
junk = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5),
                 st.dictionaries(st.sampled_from(["textDocument", "position", "context"]),
                                 st.one_of(st.integers(-2, 2), st.text(max_size=3)), max_size=3))
option_values = st.fixed_dictionaries({}, optional={
    "maxTokens": st.one_of(st.integers(1, 6), st.integers(-3, 0), st.just("x")),
    "debounceMs": st.one_of(st.integers(0, 3), st.just(-1)),
    "engine": st.sampled_from(["auto", "speculative", "diffusion", "bogus"]),
    "multiline": st.sampled_from(["auto", "always", "never", 1]),
    "contextChars": st.one_of(st.integers(256, 400), st.just(1)),
    "timeoutMs": st.sampled_from([100, 5000]),
    "colour": st.just("red"),
})

operation = st.one_of(
    st.tuples(st.just("open"), uri, text, st.sampled_from(["python", "javascript", "cobol", ""])),
    st.tuples(st.just("change"), uri, position, position, text),
    st.tuples(st.just("replace"), uri, text),
    st.tuples(st.just("request"), uri, position, st.booleans()),
    st.tuples(st.just("request"), uri, position, st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("close"), uri),
    st.tuples(st.just("settings"), option_values),
    st.tuples(st.just("event"), st.sampled_from(["shown", "accepted", "bogus"]), st.integers(0, 50)),
    st.tuples(st.just("malformed"), junk),
    st.tuples(st.just("status"),),
    st.tuples(st.just("sleep"), st.integers(0, 3)),
)


async def session(ops) -> None:
    client = InProcessClient(lambda config: FakeEngines(config, step_s=0.0005))
    reports = []
    original = client.ls.report_server_error
    client.ls.report_server_error = lambda error, source: (reports.append(source), original(error, source))
    await client.start({"maxTokens": 3, "debounceMs": 1, "warmup": False})
    model: dict[str, str] = {}
    versions = {u: 1 for u in URIS}
    requests: list[tuple[int, asyncio.Future, bool]] = []  # (id, response, malformed)
    item_ids: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "open" and op[1] != URIS[-1]:
            client.open(op[1], op[2], op[3])
            model[op[1]] = op[2]
        elif kind == "change":
            _, u, start, end, new = op
            versions[u] += 1
            client.change(u, versions[u], new, start, end)
            if u in model:
                a, b = sorted([reference.position_to_index(model[u], *start),
                               reference.position_to_index(model[u], *end)])
                model[u] = model[u][:a] + new + model[u][b:]
        elif kind == "replace":
            versions[op[1]] += 1
            client.change(op[1], versions[op[1]], op[2])
            if op[1] in model:
                model[op[1]] = op[2]
        elif kind == "request":
            msg_id, response = client.inline(op[1], *op[2], invoked=op[3])
            requests.append((msg_id, response, False))
        elif kind == "cancel" and requests:
            client.notify("$/cancelRequest", {"id": requests[op[1] % len(requests)][0]})
        elif kind == "close":
            client.notify("textDocument/didClose", {"textDocument": {"uri": op[1]}})
            model.pop(op[1], None)
        elif kind == "settings":
            client.notify("workspace/didChangeConfiguration", {"settings": op[1]})
        elif kind == "event":
            item = item_ids[op[2] % len(item_ids)] if item_ids else "nope"
            client.notify("infill/event", {"type": op[1], "id": item})
        elif kind == "malformed":
            msg_id, response = client.request("textDocument/inlineCompletion", op[1])
            requests.append((msg_id, response, True))
        elif kind == "status":
            await client.status()
        elif kind == "sleep":
            await asyncio.sleep(op[1] / 1000)
        for done in [r for _, r, _ in requests if r.done() and "result" in r.result()]:
            result = done.result()["result"]
            item_ids += [i["command"]["arguments"][0] for i in (result or {}).get("items", [])]

    for msg_id, response, malformed in requests:
        message = await asyncio.wait_for(response, 10)  # no hang
        if "error" in message:
            assert message["error"]["code"] == (-32602 if malformed else -32800), message
        else:
            assert isinstance(message["result"]["items"], list)
    assert FeatureNotificationError not in reports and FeatureRequestError not in reports
    for u, expected in model.items():
        assert client.ls.documents.get(u).text == expected
    assert len(client.ls.documents) == len(model)
    while client.ls.worker.pending or (await client.status())["state"] == "loading":
        await asyncio.sleep(0.001)
    assert client.ls.scheduler.running == 0  # nothing left behind
    assert len(client.ls.typethrough) <= len(URIS)
    client.shutdown()
    client.ls.worker._thread.join(5)
    assert not client.ls.worker._thread.is_alive()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(operation, min_size=1, max_size=40))
def test_random_sessions_never_crash_hang_or_leak(ops):
    asyncio.run(asyncio.wait_for(session(ops), 60))
