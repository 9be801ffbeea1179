"""Model loading in the background, failures that leave the server up, the GPU out-of-memory
fallbacks (fake engines, in-process), a real model folder that fails (stdio), and the entry
points: `infill serve`, TCP, and the position encoding agreed at `initialize`."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.lsp.client import LanguageClient as PyglsClient
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_client import (FAKE_SERVER, REAL_SERVER, initialize, inline_params, open_doc, server_env,
                      texts, wait_ready)
from lsp_fakes import FakeEngines
from lsp_inprocess import InProcessClient, items

URI = "file:///work/m.py"
FAKE_SERVER_TCP = [*FAKE_SERVER, "--tcp"]


async def test_initialize_answers_at_once_and_requests_get_empty_lists_until_ready():
    client = InProcessClient(lambda config: FakeEngines(config, load_s=1.0))
    started = time.monotonic()
    info = await client.start({"maxTokens": 2}, wait=False)
    assert time.monotonic() - started < 0.5
    assert info["state"] == "loading" and not info["ready"]
    client.open(URI, "x = \n")
    _, early = client.inline(URI, 0, 4)
    assert items(await asyncio.wait_for(early, 0.5)) == []  # an empty list, not an error
    while (await client.status())["state"] == "loading":
        await asyncio.sleep(0.01)
    _, ready = client.inline(URI, 0, 4)
    assert items(await asyncio.wait_for(ready, 2)) == ["spec_4_1()"]
    client.shutdown()


async def test_one_engine_failing_leaves_the_other_serving_and_says_so():
    client = InProcessClient(lambda config: FakeEngines(config, fail=("diffusion",)))
    info = await client.start({"maxTokens": 2, "debounceMs": 0})
    assert info["state"] == "ready" and info["engines"] == ["speculative"]
    assert "diffusion" in info["error"]
    warnings = [n for n in client.notifications if n["method"] == "window/showMessage"]
    assert warnings and "speculative only" in warnings[0]["params"]["message"]
    client.open(URI, "print()\n")
    _, invoked = client.inline(URI, 0, 6, invoked=True)  # diffusion would be routed here
    assert items(await invoked) == ["spec_6_2()"]
    client.shutdown()


async def test_both_engines_failing_keeps_the_server_up_with_empty_lists():
    client = InProcessClient(lambda config: FakeEngines(config, fail=("diffusion", "speculative")))
    info = await client.start({"maxTokens": 2})
    assert info["state"] == "failed" and not info["ready"]
    assert "no config.json" in info["error"]
    errors = [n["params"] for n in client.notifications if n["method"] == "window/showMessage"]
    assert errors[-1]["type"] == types.MessageType.Error
    client.open(URI, "x = \n")
    _, response = client.inline(URI, 0, 4)
    assert items(await response) == []
    client.shutdown()


async def test_a_new_model_configuration_reloads_in_the_background():
    made = []
    client = InProcessClient(lambda config: made.append(FakeEngines(config)) or made[-1])
    await client.start({"maxTokens": 2, "debounceMs": 0})
    client.notify("workspace/didChangeConfiguration", {"settings": {"device": "cpu", "maxTokens": 2}})
    while (info := await client.status())["state"] != "ready":
        await asyncio.sleep(0.01)
    assert len(made) == 2 and made[-1].config.device == "cpu"
    client.notify("workspace/didChangeConfiguration", {"settings": {"device": "cpu", "maxTokens": 5}})
    assert (await client.status())["state"] == "ready" and len(made) == 2  # no reload
    client.shutdown()


async def test_gpu_out_of_memory_falls_back_to_a_shorter_window_then_to_the_cpu():
    made = []

    def make(config):
        made.append(FakeEngines(config, oom=2))
        return made[-1]

    client = InProcessClient(make)
    info = await client.start({"device": "cuda", "maxTokens": 2, "debounceMs": 0,
                               "contextChars": 4000, "warmup": False})
    assert info["device"] == "cuda"
    client.open(URI, "x = 1\n" * 2000 + "y = ")
    _, response = client.inline(URI, 2000, 4)
    [text] = items(await response)
    info = await client.status()
    assert info["device"] == "cpu" and len(info["fallbacks"]) == 2
    gpu = made[0].requests
    assert len(gpu[0].prefix) > 3900  # the first try had the whole window, the second half
    assert len(gpu[-1].prefix) + len(gpu[-1].suffix) <= info["windowCap"] <= 2000
    assert made[-1].config.device == "cpu" and text == f"spec_{len(made[-1].requests[-1].prefix)}_0()"
    warnings = [n["params"]["message"] for n in client.notifications
                if n["method"] == "window/showMessage"]
    assert any("moved to the CPU" in w for w in warnings)
    client.shutdown()


async def test_one_out_of_memory_only_shortens_the_window():
    client = InProcessClient(lambda config: FakeEngines(config, oom=1))
    await client.start({"device": "cuda", "maxTokens": 2, "debounceMs": 0, "warmup": False})
    client.open(URI, "x = 1\n" * 2000 + "y = ")
    _, response = client.inline(URI, 2000, 4)
    assert items(await response)
    info = await client.status()
    assert info["device"] == "cuda" and info["windowCap"] is not None
    assert len(info["fallbacks"]) == 1
    client.shutdown()


async def test_out_of_memory_in_the_warm_up_falls_back_before_the_first_request():
    client = InProcessClient(lambda config: FakeEngines(config, oom=2))
    info = await client.start({"device": "cuda", "maxTokens": 2})
    assert info["state"] == "ready" and info["device"] == "cpu"
    assert info["engines"] == ["speculative", "diffusion"]
    client.shutdown()


# --- a real model folder that does not load, over stdio ---------------------------------------

@pytest_lsp.fixture(config=ClientServerConfig(server_command=REAL_SERVER, server_env=server_env()))
async def real_client(lsp_client: LanguageClient, tmp_path):
    await initialize(lsp_client, "vscode", {"target": str(tmp_path / "no-such-target"),
                                            "diffusion": str(tmp_path), "logDir": str(tmp_path)})
    yield
    await lsp_client.shutdown_session()


async def test_model_folders_that_fail_to_load_leave_the_server_up(real_client):
    info = await wait_ready(real_client)
    assert info["state"] == "failed"
    assert "does not exist" in info["error"] and "no config.json" in info["error"]
    shown = [m for m in real_client.messages if m.type == types.MessageType.Error]
    assert shown and "completions are off" in shown[0].message
    open_doc(real_client, "file:///work/x.py", "x = \n")
    result = await real_client.text_document_inline_completion_async(
        inline_params("file:///work/x.py", 0, 4))
    assert texts(result) == []


# --- the entry points -------------------------------------------------------------------------

@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "infill.cli", "serve", "--device", "cpu",
                    "--target", "/nowhere/target", "--diffusion", "/nowhere/diffusion"],
    server_env=server_env()))
async def cli_client(lsp_client: LanguageClient, tmp_path):
    await initialize(lsp_client, "neovim", {"logDir": str(tmp_path)})
    yield
    await lsp_client.shutdown_session()


async def test_infill_serve_takes_its_model_options_as_defaults(cli_client):
    info = await wait_ready(cli_client)
    assert info["options"]["device"] == "cpu" and info["options"]["target"] == "/nowhere/target"
    assert info["state"] == "failed" and "/nowhere/target" in info["error"]


async def test_serving_over_tcp(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*FAKE_SERVER_TCP, f"127.0.0.1:{port}"], env=server_env())
    client = PyglsClient("tcp-test", "1")
    try:
        for _ in range(200):
            try:
                await client.start_tcp("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        result = await client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), initialization_options={"logDir": str(tmp_path)}))
        assert result.capabilities.inline_completion_provider is not None
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        assert server.wait(10) is not None
    finally:
        server.kill()


@pytest.mark.parametrize("offered,units", [(None, 3), ("utf-16", 3), ("utf-8", 5), ("utf-32", 2)])
async def test_positions_count_in_the_encoding_agreed_at_initialize(offered, units):
    """"x😀" then the cursor: 3 UTF-16 units (the default), 5 UTF-8 bytes, 2 code points."""
    client = InProcessClient(FakeEngines)
    await client.start({"maxTokens": 1, "debounceMs": 0}, encoding=offered)
    assert client.initialize_result["capabilities"]["positionEncoding"] == (offered or "utf-16")
    client.open(URI, "x😀\n")
    _, response = client.inline(URI, 0, units)
    item = (await response)["result"]["items"][0]
    assert item["insertText"] == "spec_2_1()" and item["range"]["start"]["character"] == units
    client.shutdown()
