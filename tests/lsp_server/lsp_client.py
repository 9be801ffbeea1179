"""Helpers for driving the server over stdio with pytest-lsp."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import client_capabilities

from infill.traces.client import plain  # noqa: F401 (the tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FAKE_SERVER = [sys.executable, str(HERE / "fake_server.py")]
REAL_SERVER = [sys.executable, "-m", "lsp_server"]


def server_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", **extra}
    return env


def capabilities(editor: str) -> types.ClientCapabilities:
    """A recorded VS Code or Neovim capability set, with the inline-completion capability
    declared (the recordings predate it)."""
    caps = client_capabilities({"vscode": "visual-studio-code", "neovim": "neovim"}[editor])
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities(
        dynamic_registration=False)
    return caps


async def initialize(client, editor: str, options: dict | None = None) -> types.InitializeResult:
    return await client.initialize_session(types.InitializeParams(
        capabilities=capabilities(editor), initialization_options=options,
        root_uri=ROOT.as_uri(), workspace_folders=[]))


async def status(client) -> dict:
    return plain(await client.protocol.send_request_async("infill/status", {}))


async def wait_ready(client, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await status(client)
        if info["state"] in ("ready", "failed"):
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"models not loaded after {timeout} s: {info}")


def open_doc(client, uri: str, text: str, language: str = "python", version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)))


def insert(client, uri: str, version: int, line: int, character: int, text: str) -> None:
    at = types.Position(line=line, character=character)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=at, end=at), text=text)]))


def inline_params(uri: str, line: int, character: int, invoked: bool = False):
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=kind))


def texts(result) -> list[str]:
    if result is None:
        return []
    items = result.items if hasattr(result, "items") else result
    return [item.insert_text for item in items]
