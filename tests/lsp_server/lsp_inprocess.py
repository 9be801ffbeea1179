"""The server driven in-process through its JSON-RPC protocol object: the same messages as
over stdio, without a pipe or a subprocess, so a fuzz test can afford thousands of sessions."""

from __future__ import annotations

import asyncio
import itertools
import json

from pygls.protocol import default_converter

from lsp_server.server import create_server

# One converter for every server made here: cattrs compiles its hooks once per converter.
CONVERTER = default_converter()


class InProcessClient:
    def __init__(self, make_engines, defaults=None):
        self.ls = create_server(defaults, make_engines, converter_factory=lambda: CONVERTER)
        self.ls.protocol.set_writer(self, include_headers=False)
        self.notifications: list[dict] = []
        self._waiting: dict = {}
        self._ids = itertools.count()

    # the server's writer
    def write(self, data: bytes) -> None:
        message = json.loads(data)
        if "method" in message:
            self.notifications.append(message)
        elif (future := self._waiting.pop(message.get("id"), None)) is not None and not future.done():
            future.set_result(message)

    def close(self) -> None:
        pass

    def _deliver(self, message: dict) -> None:
        """What pygls' reader loop does with one message from the pipe."""
        try:
            self.ls.protocol.handle_message(
                json.loads(json.dumps(message), object_hook=self.ls.protocol.structure_message))
        except Exception:  # logged by pygls' loop too; a malformed request was answered
            pass

    def request(self, method: str, params) -> tuple[int, asyncio.Future]:
        """(id, future of the whole response message: {"result": ...} or {"error": ...})."""
        msg_id = next(self._ids)
        future = self._waiting[msg_id] = asyncio.get_running_loop().create_future()
        self._deliver({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id, future

    def notify(self, method: str, params) -> None:
        self._deliver({"jsonrpc": "2.0", "method": method, "params": params})

    async def call(self, method: str, params, timeout: float = 10.0):
        _, future = self.request(method, params)
        response = await asyncio.wait_for(future, timeout)
        if "error" in response:
            raise RuntimeError(response["error"])
        return response["result"]

    async def start(self, options: dict | None = None, encoding: str | None = None,
                    wait: bool = True) -> dict:
        """initialize (offering only `encoding` for positions, when named) and initialized;
        then, with wait, wait for the models."""
        capabilities = {"textDocument": {"inlineCompletion": {}}}
        if encoding:
            capabilities["general"] = {"positionEncodings": [encoding]}
        self.initialize_result = await self.call("initialize", {
            "processId": None, "rootUri": None, "initializationOptions": options,
            "capabilities": capabilities})
        self.notify("initialized", {})
        if wait:
            while (info := await self.status())["state"] in ("not loaded", "loading"):
                await asyncio.sleep(0.001)
            return info
        return await self.status()

    async def status(self) -> dict:
        return await self.call("infill/status", None)

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": language, "version": version, "text": text}})

    def change(self, uri: str, version: int, text: str, start=None, end=None) -> None:
        change = {"text": text}
        if start is not None:
            change["range"] = {"start": {"line": start[0], "character": start[1]},
                               "end": {"line": end[0], "character": end[1]}}
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                               "contentChanges": [change]})

    def inline(self, uri: str, line: int, character: int, invoked: bool = False):
        return self.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": 1 if invoked else 2}})

    def shutdown(self) -> None:
        self.ls.scheduler.cancel_all()
        self.ls.worker.stop()


def items(response: dict) -> list[str]:
    result = response.get("result")
    if not result:
        return []
    return [item["insertText"] for item in (result["items"] if isinstance(result, dict) else result)]
