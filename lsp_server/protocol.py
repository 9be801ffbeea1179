"""pygls' protocol with two changes a completion server needs.

- The server keeps its own documents (`documents.py`): pygls' store rebuilds the whole text on
  every keystroke (slow for multi-megabyte files), raises on an edit to a document it never saw,
  and reads unknown URIs from disk. So the built-in didOpen/didChange/didClose only pass the
  notification on to the server's handlers.
- A request whose params do not match the LSP types gets an InvalidParams error response.
  pygls only logs it, and the client would wait for an answer forever.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method


class InfillProtocol(LanguageServerProtocol):
    def _pass_on(self, method: str, params):
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params):
        yield from self._pass_on(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params):
        yield from self._pass_on(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params):
        yield from self._pass_on(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def structure_message(self, data):
        if isinstance(data, dict) and "method" in data and "params" not in data:
            # JSON-RPC lets a request or notification omit params; pygls's message types
            # require the field, so a custom request like `infill/status` would fail.
            data = {**data, "params": None}
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "method" in data and isinstance(data.get("id"), (int, str)):
                self._send_response(data["id"], error=exc.to_response_error())
            raise
