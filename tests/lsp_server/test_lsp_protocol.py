"""The server over stdio (pytest-lsp), as VS Code and as Neovim talk to it, with instant fake
engines (`lsp_fakes.py`: one 10 ms step per requested token, the cancel token checked every step).
The real models are exercised in test_lsp_shipped_models.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from concurrent.futures import Future

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_client import (FAKE_SERVER, initialize, inline_params, insert, open_doc, server_env,
                      status, texts, wait_ready)

pytestmark = pytest.mark.asyncio(loop_scope="module")
STEP_MS = 10
uris = (f"file:///work/doc{i}.py" for i in itertools.count())


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("events")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=FAKE_SERVER,
                                              server_env=server_env(FAKE_STEP_MS=str(STEP_MS))),
                    scope="module", params=["vscode", "neovim"])
async def client(lsp_client: LanguageClient, request, log_dir):
    lsp_client.editor = request.param
    lsp_client.init_result = await initialize(lsp_client, request.param,
                                              {"logDir": str(log_dir), "maxTokens": 2})
    assert (await wait_ready(lsp_client))["state"] == "ready"
    yield
    await lsp_client.shutdown_session()


def configure(client, **options) -> None:
    """Options for the next requests (defaults for everything not named)."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"infill": {"maxTokens": 2, "debounceMs": 0, **options}}))


async def send(client, method: str, params, msg_id: str) -> asyncio.Task:
    """Send a request now (pytest-lsp's send_request_async sends only once awaited)."""
    task = asyncio.ensure_future(client.protocol.send_request_async(method, params, msg_id=msg_id))
    await asyncio.sleep(0)
    return task


async def complete(client, uri, line, character, invoked=False):
    return await client.text_document_inline_completion_async(
        inline_params(uri, line, character, invoked))


async def test_inline_completion_is_advertised_with_incremental_sync(client):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert "infill.accepted" in caps.execute_command_provider.commands
    assert caps.position_encoding == ("utf-16" if client.editor == "vscode" else "utf-8")


async def test_a_completion_is_inserted_at_the_cursor(client):
    configure(client)
    uri = next(uris)
    open_doc(client, uri, "def f(x):\n    return \n")
    result = await complete(client, uri, 1, 11)
    [item] = result.items
    assert item.insert_text == "spec_21_1()"  # AR engine: the cursor is at a line end
    assert item.range.start == item.range.end == types.Position(line=1, character=11)
    assert item.command.command == "infill.accepted" and len(item.command.arguments) == 1


async def test_an_invoked_request_returns_both_engines(client):
    configure(client)
    uri = next(uris)
    open_doc(client, uri, "print()\n")
    automatic = await complete(client, uri, 0, 6)
    assert texts(automatic) == ["diff_6_2()"]
    invoked = await complete(client, uri, 0, 6, invoked=True)
    assert texts(invoked) == ["diff_6_2()", "spec_6_2()"]  # routed engine (diffusion) first


async def test_typing_through_a_suggestion_returns_the_rest_without_the_model(client):
    configure(client)
    uri = next(uris)
    open_doc(client, uri, "x = \n")
    assert texts(await complete(client, uri, 0, 4)) == ["spec_4_1()"]
    before = (await status(client))["requests"]["cacheHits"]
    insert(client, uri, 2, 0, 4, "spe")
    assert texts(await complete(client, uri, 0, 7)) == ["c_4_1()"]
    assert (await status(client))["requests"]["cacheHits"] == before + 1
    insert(client, uri, 3, 0, 7, "X")  # off the suggestion: the model again
    assert texts(await complete(client, uri, 0, 8)) == ["spec_8_1()"]


async def test_cancel_request_answers_request_cancelled_and_frees_the_model(client):
    configure(client, maxTokens=300)  # 3 s of decoding
    uri = next(uris)
    open_doc(client, uri, "y = \n")
    msg_id = f"cancel-{client.editor}"
    pending = await send(client, types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 0, 4),
                         msg_id)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as error:
        await pending
    assert error.value.code == -32800
    assert time.monotonic() - started < 1.0
    configure(client, maxTokens=1)  # would wait ~2.8 s if the old decode were still running
    started = time.monotonic()
    assert texts(await complete(client, uri, 0, 4)) == ["spec_4_1()"]
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("debounce_ms,max_tokens", [(0, 30), (200, 2)])
async def test_a_burst_of_50_keystrokes_yields_one_completion_for_the_last(client, debounce_ms, max_tokens):
    """Neovim never cancels its older requests; VS Code does ($/cancelRequest). Either way the
    only completion is the last one: the older ones are cancelled mid-decode (debounce 0) or
    in their debounce wait, and answer empty lists or RequestCancelled."""
    configure(client, debounceMs=debounce_ms, maxTokens=max_tokens)
    uri = next(uris)
    open_doc(client, uri, "value = \n")
    pending, previous = [], None
    for i in range(50):
        insert(client, uri, i + 2, 0, 8 + i, "a")
        msg_id = f"burst-{client.editor}-{debounce_ms}-{i}"
        if client.editor == "vscode" and previous is not None:
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=previous))
        pending.append(await send(client, types.TEXT_DOCUMENT_INLINE_COMPLETION,
                                  inline_params(uri, 0, 9 + i), msg_id))
        previous = msg_id
    results = await asyncio.gather(*pending, return_exceptions=True)
    for r in results[:-1]:
        assert (isinstance(r, JsonRpcException) and r.code == -32800) or texts(r) == []
    assert texts(results[-1]) == ["spec_58_1()"]


async def test_edits_and_other_requests_are_served_while_a_completion_runs(client):
    configure(client, maxTokens=300)
    busy, other = next(uris), next(uris)
    open_doc(client, busy, "z = \n")
    open_doc(client, other, "w = \n")
    running = asyncio.ensure_future(complete(client, busy, 0, 4))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    insert(client, other, 2, 0, 4, "1")
    assert (await status(client))["documents"] >= 2
    assert time.monotonic() - started < 1.0  # the event loop is not blocked by the model (3 s)
    insert(client, busy, 2, 0, 4, "2")  # an edit to the busy document cancels its completion
    assert texts(await asyncio.wait_for(running, 1.0)) == []


async def test_shown_and_accepted_events_are_logged_locally(client, log_dir):
    configure(client)
    uri = next(uris)
    open_doc(client, uri, "total = \n")
    [item] = (await complete(client, uri, 0, 8)).items
    item_id = item.command.arguments[0]
    client.protocol.notify("infill/event", {"type": "shown", "id": item_id})
    client.protocol.notify("infill/event", {"type": "partiallyAccepted", "id": item_id,
                                            "acceptedLength": 3})
    client.protocol.notify("infill/event", {"type": "bogus", "id": None})
    await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command=item.command.command, arguments=list(item.command.arguments)))
    await status(client)  # the notifications before it have been handled
    lines = [json.loads(l) for l in (log_dir / "events.jsonl").read_text().splitlines()]
    mine = [l for l in lines if l["id"] == item_id]
    assert [l["event"] for l in mine] == ["shown", "partiallyAccepted", "accepted"]
    assert mine[1]["acceptedLength"] == 3 and mine[0]["engine"] == "speculative"
    assert mine[0]["chars"] == len(item.insert_text) and "text" not in mine[0]


async def test_status_reports_models_device_readiness_and_latencies(client):
    info = await status(client)
    assert info["ready"] and info["device"] == "cpu"
    assert info["models"] == {"speculative": "fake-ar", "diffusion": "fake-diffusion"}
    assert info["requests"]["latencyMs"]["count"] >= 1
    assert {"median", "p90"} <= set(info["requests"]["latencyMs"])


# --- bad input -------------------------------------------------------------------------------

def send_raw(client, method: str, params):
    """A request as the bytes say, past the client's own typing of the params."""
    msg_id = f"raw-{next(uris)}"
    future = client.protocol._request_futures[msg_id] = Future()
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return asyncio.wrap_future(future)


@pytest.mark.parametrize("params", [
    {"textDocument": 5, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}},
    {"textDocument": {"uri": "file:///a.py"}, "position": {"line": -1, "character": 0},
     "context": {"triggerKind": 1}},
    {"textDocument": {"uri": "file:///a.py"}},
])
async def test_malformed_params_get_an_invalid_params_error(client, params):
    with pytest.raises(JsonRpcException) as error:
        await asyncio.wait_for(send_raw(client, types.TEXT_DOCUMENT_INLINE_COMPLETION, params), 5)
    assert error.value.code == -32602
    assert (await status(client))["ready"]  # still up


async def test_positions_past_the_end_or_inside_a_surrogate_pair_are_clamped(client):
    configure(client)
    uri = next(uris)
    open_doc(client, uri, "s = '😀😀'\nt = 1")
    past_line = await complete(client, uri, 99, 5)
    assert past_line.items[0].range.start == types.Position(line=1, character=5)
    past_char = await complete(client, uri, 0, 999)
    end = 10 if client.editor == "vscode" else 14  # UTF-16 units; Neovim negotiates UTF-8
    assert past_char.items[0].range.start == types.Position(line=0, character=end)
    inside = await complete(client, uri, 0, 6 if client.editor == "vscode" else 7)
    assert inside.items[0].range.start == types.Position(line=0, character=5)
    assert inside.items[0].insert_text == "diff_5_9()"  # the prefix is "s = '"


async def test_unknown_documents_get_an_empty_list(client):
    assert texts(await complete(client, "file:///never/opened.py", 0, 0)) == []
    insert(client, "file:///never/opened.py", 2, 0, 0, "x")  # an edit to it is ignored
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri="file:///never/opened.py")))
    assert (await status(client))["ready"]


async def test_a_5_mb_document_with_nul_bytes_in_an_unknown_language(client):
    configure(client)
    uri = next(uris).replace(".py", ".cob")
    line = "       MOVE A TO B.\x00 * ünïcode 😀\n"
    text = line * (5_500_000 // len(line))
    open_doc(client, uri, text, language="cobol")
    last = text.count("\n")
    for i in range(20):  # keystrokes at the end of a 5 MB file
        insert(client, uri, 2 + i, last, i, "x")
    result = await complete(client, uri, last, 20)
    [item] = result.items
    assert item.insert_text.startswith("spec_")  # the window, not 5 MB, reached the engine
    assert int(item.insert_text.split("_")[1]) <= 8000 + 20


async def test_invalid_configuration_warns_and_uses_the_defaults(client):
    client.messages.clear()
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"infill": {"maxTokens": "many", "debounceMs": -5, "engine": "gpt", "color": 1}}))
    info = await status(client)
    # initializationOptions set maxTokens=2; debounceMs falls back to the documented default
    assert info["options"]["maxTokens"] == 2 and info["options"]["debounceMs"] is None
    assert info["options"]["engine"] == "auto"
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert len(warnings) == 4 and any("maxTokens" in w for w in warnings)
    configure(client)


def test_a_request_without_params_is_structured():
    """JSON-RPC allows omitting params (`infill/status` from a plain client)."""
    from lsp_server.server import create_server

    message = create_server().protocol.structure_message(
        {"jsonrpc": "2.0", "id": 1, "method": "infill/status"})
    assert message.method == "infill/status" and message.params is None
