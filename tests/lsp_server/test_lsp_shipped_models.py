"""End to end with the real engines on the CPU: over stdio (`python -m lsp_server`, as VS Code
and as Neovim) and in-process for the cancellation that must land mid-decode.

They use the shipped models (infill/models/default) and are skipped, saying so, while that
folder holds no weights. INFILL_LSP_TEST_MODELS=DIR runs them on DIR/target and DIR/diffusion
instead (e.g. tiny random models, to try the server before the shipped ones exist).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_client import (REAL_SERVER, ROOT, initialize, inline_params, insert, open_doc, server_env,
                      status, texts, wait_ready)
from lsp_inprocess import InProcessClient, items

SHIPPED = ROOT / "infill" / "models" / "default"
SPECIAL = ("<|end|>", "<|pad|>", "<|mask|>", "<|prefix|>", "<|suffix|>", "<|middle|>")
PYTHON = "import math\n\n\ndef area(radius):\n    return \n\n\ndef perimeter(radius):\n    return 2 * math.pi * radius\n"


def model_options() -> dict:
    override = os.environ.get("INFILL_LSP_TEST_MODELS")
    if override:
        return {"target": f"{override}/target", "diffusion": f"{override}/diffusion",
                "drafter": "ngram"}
    missing = [role for role in ("target", "draft", "diffusion")
               if not any((SHIPPED / role).glob("*.safetensors"))]
    if missing:
        pytest.skip(f"the shipped models are not there yet: no weights in "
                    f"{', '.join(str(SHIPPED / r) for r in missing)}")
    return {}


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def options(tmp_path_factory) -> dict:
    return {**model_options(), "device": "cpu", "logDir": str(tmp_path_factory.mktemp("events")),
            "debounceMs": 0, "maxTokens": 8}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=REAL_SERVER, server_env=server_env()),
                    scope="module", params=["vscode", "neovim"])
async def client(lsp_client: LanguageClient, request, options):
    lsp_client.editor = request.param
    await initialize(lsp_client, request.param, options)
    info = await wait_ready(lsp_client, timeout=300)
    assert info["state"] == "ready", info
    yield
    await lsp_client.shutdown_session()


def settle(client, options, **more) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={**options, **more}))


async def test_the_models_are_loaded_warm_and_reported(client, options):
    info = await status(client)
    assert info["ready"] and info["device"] == "cpu" and info["error"] is None
    assert set(info["models"]) == {"speculative", "diffusion"}
    if not os.environ.get("INFILL_LSP_TEST_MODELS"):
        assert info["models"] == {"speculative": "infill-default/target",
                                  "diffusion": "infill-default/diffusion"}
    assert info["loadSeconds"] > 0


async def test_completions_from_both_engines_are_clean_and_at_the_cursor(client, options):
    settle(client, options)
    uri = f"file:///work/shipped-{client.editor}.py"
    open_doc(client, uri, PYTHON)
    automatic = await client.text_document_inline_completion_async(inline_params(uri, 4, 11))
    invoked = await client.text_document_inline_completion_async(inline_params(uri, 4, 11, True))
    assert len(texts(automatic)) <= 1 and len(texts(invoked)) <= 2
    for item in list(automatic.items) + list(invoked.items):
        assert item.range.start == item.range.end == types.Position(line=4, character=11)
        assert not any(token in item.insert_text for token in SPECIAL)
    info = await status(client)
    assert info["requests"]["errors"] == 0 and info["requests"]["latencyMs"]["count"] >= 1


async def test_a_burst_of_50_keystrokes_runs_one_completion_for_the_last(client, options):
    # The static-cache decoder reuses the previous keystroke's cache and finishes 8 tokens in
    # milliseconds: without a debounce, a client descheduled for that long between two
    # keystrokes (a loaded CI machine) lets an older request finish first. Editors debounce;
    # so does this burst (mid-decode cancellation at debounce 0: test_lsp_protocol.py).
    settle(client, options, debounceMs=150)
    uri = f"file:///work/burst-{client.editor}.py"
    open_doc(client, uri, "def total(values):\n    \n")
    before = (await status(client))["requests"]
    word, pending, previous = "result = sum(v for v in values if v is not None) + 0", [], None
    for i, char in enumerate(word[:50]):
        insert(client, uri, i + 2, 1, 4 + i, char)
        if client.editor == "vscode" and previous is not None:
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=previous))
        previous = f"shipped-burst-{client.editor}-{i}"
        task = asyncio.ensure_future(client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 5 + i), msg_id=previous))
        await asyncio.sleep(0)
        pending.append(task)
    results = await asyncio.gather(*pending, return_exceptions=True)
    for r in results[:-1]:
        assert (isinstance(r, JsonRpcException) and r.code == -32800) or texts(r) == []
    assert not isinstance(results[-1], Exception)
    after = (await status(client))["requests"]
    finished = (after["completed"] + after["empty"]) - (before["completed"] + before["empty"])
    assert finished == 1  # the model ran to the end once: for the last keystroke


async def test_unknown_language_nul_bytes_and_a_position_inside_a_pair(client, options):
    settle(client, options)
    uri = f"file:///work/odd-{client.editor}.cob"
    open_doc(client, uri, "       DISPLAY '😀\x00' .\n       MOVE \n", language="cobol")
    for line, character in ((0, 17), (1, 12), (1, 999), (7, 0)):
        result = await client.text_document_inline_completion_async(
            inline_params(uri, line, character))
        assert isinstance(texts(result), list)
    assert (await status(client))["requests"]["errors"] == 0


async def test_typing_the_start_of_a_suggestion_shows_the_rest(client, options):
    settle(client, options, multiline="never")
    spots = ["x = [i * i for i in range(", "import os\npath = os.path.", "def f(a, b):\n    return a",
             "for i in range(10):\n    print(", "values = {'a': 1, 'b': "]
    for n, text in enumerate(spots):
        uri = f"file:///work/typethrough-{client.editor}-{n}.py"
        open_doc(client, uri, text)
        line, col = text.count("\n"), len(text.split("\n")[-1])
        shown = texts(await client.text_document_inline_completion_async(inline_params(uri, line, col)))
        if shown and len(shown[0].strip()) >= 2 and "\n" not in shown[0]:
            insert(client, uri, 2, line, col, shown[0][0])
            rest = await client.text_document_inline_completion_async(inline_params(uri, line, col + 1))
            assert texts(rest) == [shown[0][1:]]
            return
    pytest.skip("the model suggested nothing of two characters or more at these spots")


# --- cancellation mid-decode with the real engines (in-process: the forward is observable) ---

@pytest.mark.parametrize("engine,role", [("speculative", "ar"), ("diffusion", "diffusion")])
async def test_a_cancel_during_a_forward_stops_the_decoder_after_it(options, engine, role):
    """The request is cancelled while the model's first forward runs; the engine notices at
    its next step, so at most one more forward runs, and the answer is RequestCancelled."""
    client = InProcessClient(None)
    await client.start({**options, "engine": engine, "maxTokens": 256, "multiline": "always"})
    model = getattr(client.ls.models.engines, role).model
    in_forward, cancel_sent, forwards_after = threading.Event(), threading.Event(), []
    original = model.forward

    def forward(*args, **kwargs):
        if cancel_sent.is_set():
            forwards_after.append(1)
        if not in_forward.is_set():
            in_forward.set()
            cancel_sent.wait(5)
        return original(*args, **kwargs)

    model.forward = forward
    try:
        client.open("file:///work/cancel.py", PYTHON)
        msg_id, response = client.inline("file:///work/cancel.py", 4, 11)
        assert await asyncio.to_thread(in_forward.wait, 30)
        started = time.monotonic()
        client.notify("$/cancelRequest", {"id": msg_id})
        cancel_sent.set()
        message = await asyncio.wait_for(response, 5)
        assert message["error"]["code"] == -32800
        assert time.monotonic() - started < 1.0
        while client.ls.worker.pending or client.ls.scheduler.running:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(client.ls.worker.submit(lambda: None).result, 30)  # thread idle
        assert len(forwards_after) <= 1
    finally:
        del model.forward
        client.shutdown()
