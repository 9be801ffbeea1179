"""A language server driven over stdio by pygls's client: start it, initialize it, wait for its
models, ask for its status, stop it. Shared by `infill trace replay` and
`python -m lsp_server.bench` (which drive the same server the same way).

The server's stderr is read as it comes (into a file, or dropped): a pipe nobody reads fills
up after 64 KB of log and then blocks the server mid-write.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import IO

from lsprotocol import types
from pygls.lsp.client import LanguageClient

STATUS = "infill/status"  # lsp_server.server.STATUS (infill does not import lsp_server)
CAPABILITIES = types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
    inline_completion=types.InlineCompletionClientCapabilities()))


def server_env() -> dict[str, str]:
    """The environment for a server: nothing is downloaded at run time."""
    return {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
            "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE", "1")}


async def spawn(command: list[str], stderr: IO[bytes] | None = None,
                name: str = "infill-client") -> LanguageClient:
    """Start the server process; its stderr goes to `stderr` (None: dropped)."""
    client = LanguageClient(name, "1")
    await client.start_io(*command, env=server_env())
    client.stderr_task = asyncio.ensure_future(_copy(client._server.stderr, stderr))
    return client


async def _copy(stream: asyncio.StreamReader, sink: IO[bytes] | None) -> None:
    while chunk := await stream.read(65536):
        if sink is not None:
            sink.write(chunk)
            sink.flush()


async def initialize(client: LanguageClient, options: dict | None = None,
                     timeout: float = 60.0, initialized: bool = True) -> types.InitializeResult:
    """`initialize` with these initializationOptions, then `initialized` (the server starts
    loading its models then) unless told not to."""
    result = await asyncio.wait_for(client.initialize_async(types.InitializeParams(
        process_id=os.getpid(), capabilities=CAPABILITIES, initialization_options=options)),
        timeout)
    if initialized:
        client.initialized(types.InitializedParams())
    return result


def plain(value):
    """pygls hands untyped JSON over as namedtuples: dicts and lists instead."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


async def status(client: LanguageClient) -> dict:
    return plain(await client.protocol.send_request_async(STATUS, {}))


async def wait_ready(client: LanguageClient, timeout: float = 300.0, every: float = 0.05) -> dict:
    """The server's status once its models are ready, or failed to load, or after timeout."""
    deadline = time.monotonic() + timeout
    while (info := await status(client))["state"] == "loading" or info["state"] == "not loaded":
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(every)
    return info


async def stop(client: LanguageClient, timeout: float = 10.0) -> None:
    """shutdown, exit, and wait for the process (killed when it does not go in time)."""
    server = client._server
    try:
        if server is not None and server.returncode is None:
            await asyncio.wait_for(client.shutdown_async(None), timeout)
            client.exit(None)
        await asyncio.wait_for(client.stop(), timeout)
    except (asyncio.TimeoutError, RuntimeError, ConnectionError):
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()
    task = getattr(client, "stderr_task", None)
    if task is not None:
        await asyncio.wait_for(task, timeout)
