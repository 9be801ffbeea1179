"""Running untrusted completions: a Python program in a child process with time, memory and
file-size limits, a fresh temporary working directory, and no network.

What it guarantees depends on the kernel; `guarantees()` reports what this machine gives:

- limits (always): wall-clock timeout that kills the child's whole process group; RLIMIT_AS
  (memory), RLIMIT_CPU, RLIMIT_FSIZE (largest file written, stdout and stderr included), no core
  dumps. A fresh temporary directory is its cwd, HOME and TMPDIR, and is deleted afterwards; the
  environment is replaced by a minimal one (no proxies, tokens or PYTHON* variables; `-I`).
- network namespace (Linux, as root or where unprivileged user namespaces are allowed): the child
  sees only an unconfigured loopback device, so no connection can leave it.
- Landlock (Linux >= 5.13): the kernel refuses every write, create, delete, rename or truncate
  outside the temporary directory (and /dev/null), whatever the child does, including through
  native code or child processes; from ABI 4 TCP bind/connect are refused too, from ABI 6 the
  child cannot signal processes outside the sandbox.
- audit hook (always; defence in depth, not a security boundary): Python-level writes outside the
  directory, sockets, subprocesses, forks and ctypes raise PermissionError. Code that gets at
  native memory could bypass it; the kernel layers above are what hold against that.

Reading the host's files is not restricted (the interpreter and its standard library must load).
The child is not given a separate user: run as root, root-owned files outside the directory are
protected by Landlock only, and RLIMIT_NPROC does not bind root (the audit hook blocks forks).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache

LAYERS = ("limits", "netns", "landlock", "audit")


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0  # wall clock for the whole run
    memory_mb: int = 1024  # address space (RLIMIT_AS)
    file_mb: int = 16  # largest file the child may write; stdout/stderr are files too
    output_chars: int = 100_000  # how much of stdout/stderr comes back


@dataclass
class RunResult:
    status: str  # "ok", "error" (non-zero exit), "timeout", "memory", "output_limit", "signal"
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    layers: list[str] = field(default_factory=list)  # what the child could apply

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        return asdict(self)


def run_python(code: str, stdin: str = "", limits: Limits = Limits(),
               layers: tuple[str, ...] = LAYERS, python: str | None = None) -> RunResult:
    """Run `code` as the main module of a fresh Python process inside the sandbox.

    `layers` picks the protections to apply (tests switch them one at a time); each is applied
    where the machine supports it and silently skipped where not (see `guarantees`)."""
    work = tempfile.mkdtemp(prefix="infill-sandbox-")
    io_dir = tempfile.mkdtemp(prefix="infill-sandbox-io-")  # outside the child's directory
    try:
        program = os.path.join(work, "main.py")
        with open(program, "w", encoding="utf-8") as f:
            f.write(code)
        stdin_path = os.path.join(io_dir, "stdin")
        with open(stdin_path, "w", encoding="utf-8") as f:
            f.write(stdin)
        config = {"dir": work, "program": program, "layers": list(layers),
                  "memory": limits.memory_mb << 20, "fsize": limits.file_mb << 20,
                  "cpu": int(limits.seconds) + 1, "report": os.path.join(io_dir, "layers")}
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work,
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        argv = [python or sys.executable, "-I", "-X", "utf8", "-c", _CHILD, json.dumps(config)]
        out_path, err_path = os.path.join(io_dir, "stdout"), os.path.join(io_dir, "stderr")
        start = time.monotonic()
        with open(stdin_path, "rb") as fin, open(out_path, "wb") as fout, \
                open(err_path, "wb") as ferr:
            child = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=ferr, cwd=work,
                                     env=env, start_new_session=True, close_fds=True)
            timed_out = False
            try:
                child.wait(timeout=limits.seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(child.pid)  # also whatever it left running in its session
            child.wait()
        seconds = time.monotonic() - start
        stdout, stderr = _read(out_path, limits.output_chars), _read(err_path, limits.output_chars)
        applied = _read(config["report"], 1000).split()
        return RunResult(_status(child.returncode, timed_out, stderr), child.returncode,
                         stdout, stderr, seconds, applied)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(io_dir, ignore_errors=True)


@lru_cache(maxsize=1)
def guarantees() -> dict:
    """Which protections a sandboxed run gets on this machine (probed once per process)."""
    result = run_python("print('ok')", limits=Limits(seconds=30))
    return {"applied": result.layers, "missing": [l for l in LAYERS if l not in result.layers],
            "probe": result.status}


def _status(returncode: int | None, timed_out: bool, stderr: str) -> str:
    if timed_out:
        return "timeout"
    if returncode == 0:
        return "ok"
    tail = stderr[-2000:]
    if "MemoryError" in tail:
        return "memory"
    if "[Errno 27]" in tail:  # EFBIG: Python ignores SIGXFSZ and raises instead
        return "output_limit"
    if returncode is not None and returncode < 0:
        if -returncode == signal.SIGXFSZ:
            return "output_limit"
        if -returncode == signal.SIGXCPU:
            return "timeout"
        return "signal"
    return "error"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(limit * 4)
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")[:limit]


# The child's first code, run before the program: it applies the layers, reports which took
# effect, then executes the program as __main__. It is trusted code, so it may use ctypes; the
# audit hook it installs last forbids ctypes to everything after it.
_CHILD = r'''
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
wanted, applied = set(cfg["layers"]), []
root = os.path.realpath(cfg["dir"])
_report = open(cfg.pop("report"), "w")  # opened before Landlock, which checks at open time

def _syscalls():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return ctypes, libc

def _netns():
    ctypes, libc = _syscalls()
    CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
    if os.geteuid() == 0 and libc.unshare(CLONE_NEWNET) == 0:
        return True
    return libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0

def _landlock():
    ctypes, libc = _syscalls()
    create, add_rule, restrict = 444, 445, 446  # the same numbers on x86_64 and aarch64
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return False
    fs = (1 << 1) | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))  # writes, removes, makes
    fs |= (1 << 13) if abi >= 2 else 0  # REFER (links and renames across directories)
    fs |= (1 << 14) if abi >= 3 else 0  # TRUNCATE
    net = 0b11 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP: with no rule, all refused
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets, signals
    class Ruleset(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]
    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = Ruleset(fs, net, scoped)
    fd = libc.syscall(create, ctypes.byref(ruleset), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        return False
    file_rights = (1 << 1) | ((1 << 14) if abi >= 3 else 0)
    for path, allowed in ((root, fs), ("/dev/null", file_rights)):
        parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rule = PathBeneath(allowed, parent)
        ok = libc.syscall(add_rule, ctypes.c_int(fd), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
        os.close(parent)
        if ok != 0:
            return False
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, required to restrict without privileges
    return libc.syscall(restrict, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0

def _inside(path):
    try:
        if isinstance(path, int):
            return True  # an fd the process already holds
        p = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return p == root or p.startswith(root + os.sep) or p == "/dev/null"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.truncate": 1, "os.chmod": 1,
                "os.chown": 1, "os.utime": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2,
                "shutil.rmtree": 1, "shutil.move": 2, "shutil.copyfile": 2}
_FORBIDDEN = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
              "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
              "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
              "os.fork", "os.forkpty", "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym",
              "ctypes.cdata", "ctypes.call_function", "sys.remote_exec")
_BANNED_MODULES = {"ctypes", "_ctypes", "_posixsubprocess"}

def _hook(event, args):
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None))[:3]
        writes = (mode is not None and any(c in str(mode) for c in "wax+")) or \
                 (mode is None and flags is not None and flags & _WRITE_FLAGS)
        if writes and not _inside(path):
            raise PermissionError(f"sandbox: write outside its directory: {path!r}")
    elif event in _PATH_EVENTS:
        for path in args[:_PATH_EVENTS[event]]:
            if path is not None and not _inside(path):
                raise PermissionError(f"sandbox: {event} outside its directory: {path!r}")
    elif event in _FORBIDDEN:
        raise PermissionError(f"sandbox: {event} is not allowed")
    elif event == "import" and args[0].split(".")[0] in _BANNED_MODULES:
        raise PermissionError(f"sandbox: importing {args[0]} is not allowed")

for name, layer in (("netns", _netns), ("landlock", _landlock)):
    if name in wanted:
        try:
            if layer():
                applied.append(name)
        except Exception:
            pass
if "limits" in wanted:
    for limit, value in ((resource.RLIMIT_AS, cfg["memory"]), (resource.RLIMIT_CPU, cfg["cpu"]),
                         (resource.RLIMIT_FSIZE, cfg["fsize"]), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    applied.append("limits")
if "audit" in wanted:
    applied.append("audit")
_report.write(" ".join(applied))
_report.close()
if "audit" in wanted:
    for module in list(sys.modules):
        if module.split(".")[0] in _BANNED_MODULES:
            del sys.modules[module]
    sys.addaudithook(_hook)
sys.argv = [cfg["program"]]
sys.path.insert(0, root)
with open(cfg["program"], encoding="utf-8") as _f:
    _code = compile(_f.read(), cfg["program"], "exec")
_globals = {"__name__": "__main__", "__file__": cfg["program"], "__builtins__": __builtins__}
del json, resource, _f, _report, wanted, applied
exec(_code, _globals)
'''
