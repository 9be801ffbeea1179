"""The sandbox stops what untrusted completions may do: loop, eat memory, write outside their
directory, reach the network. Each kernel layer is also tested alone where the machine has it."""

import os
import socket

import pytest

from infill import sandbox
from infill.sandbox import Limits, run_python

AVAILABLE = sandbox.guarantees()["applied"]


def needs(layer):
    return pytest.mark.skipif(layer not in AVAILABLE, reason=f"no {layer} on this machine")


def test_a_program_runs_with_stdin_and_its_own_directory():
    result = run_python("import os\nname = input()\nopen('note.txt', 'w').write(name)\n"
                        "print(open('note.txt').read(), os.getcwd() == os.environ['HOME'])",
                        stdin="hello\n")
    assert result.ok and result.stdout == "hello True\n"
    assert "limits" in result.layers and "audit" in result.layers
    assert not os.path.exists(os.path.join(os.environ.get("HOME", "/"), "note.txt"))


def test_a_failing_program_is_an_error_with_its_traceback():
    result = run_python("raise ValueError('nope')")
    assert result.status == "error" and "ValueError: nope" in result.stderr


def test_an_infinite_loop_is_stopped_at_the_time_limit():
    result = run_python("while True:\n    pass\n", limits=Limits(seconds=1))
    assert result.status == "timeout"
    assert result.seconds < 5


def test_a_child_process_left_behind_is_killed_too():
    # without the audit hook (which forbids forking), a forked sleeper dies with the group
    result = run_python("import os, time\nif os.fork() == 0:\n    time.sleep(60)\n",
                        limits=Limits(seconds=1), layers=("limits",))
    assert result.status == "ok" and result.seconds < 5


@pytest.mark.parametrize("bomb", ["x = [0] * (10 ** 10)",
                                  "a = []\nwhile True:\n    a.append(bytearray(10 ** 7))"])
def test_a_memory_bomb_is_stopped(bomb):
    result = run_python(bomb, limits=Limits(seconds=20, memory_mb=256))
    assert result.status == "memory"


def test_output_is_capped():
    result = run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
                        limits=Limits(seconds=10, file_mb=1, output_chars=1000))
    assert result.status == "output_limit" and len(result.stdout) == 1000


WRITES = {
    "open": "open({path!r}, 'w').write('x')",
    "os.open": "import os\nos.close(os.open({path!r}, os.O_WRONLY | os.O_CREAT))",
    "a child process": "import subprocess\nsubprocess.run(['touch', {path!r}], check=True)",
}


@pytest.mark.parametrize("layers", [sandbox.LAYERS, ("limits", "audit"),
                                    pytest.param(("limits", "landlock"), marks=needs("landlock"))],
                         ids=["all", "audit hook alone", "landlock alone"])
@pytest.mark.parametrize("how", list(WRITES))
def test_a_write_outside_its_directory_is_refused(tmp_path, layers, how):
    target = tmp_path / "escaped.txt"
    result = run_python(WRITES[how].format(path=str(target)), layers=layers)
    assert not target.exists()
    assert result.status == "error"
    assert any(m in result.stderr for m in ("PermissionError", "Permission denied",
                                            "CalledProcessError"))  # touch itself was refused


@pytest.mark.parametrize("layers", [sandbox.LAYERS, ("limits", "audit"),
                                    pytest.param(("limits", "netns"), marks=needs("netns")),
                                    pytest.param(("limits", "landlock"), marks=needs("landlock"))],
                         ids=["all", "audit hook alone", "netns alone", "landlock alone"])
def test_no_network(layers):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        result = run_python("import socket\n"
                            f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                            "print('connected')", layers=layers)
        server.settimeout(0.2)  # a connection that got through waits in the backlog
        with pytest.raises(OSError):
            server.accept()
    assert "connected" not in result.stdout and result.status == "error"


def test_the_environment_is_stripped(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("SECRET_TOKEN", "xyz")
    result = run_python("import os\nprint(sorted(os.environ))")
    assert "HTTPS_PROXY" not in result.stdout and "SECRET_TOKEN" not in result.stdout
