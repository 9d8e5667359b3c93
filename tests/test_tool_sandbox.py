"""The python sandbox tool: real subprocesses, real rlimits, a real TCP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time

import psutil
import pytest

from toolkit.registry import ToolRegistry, builtin_manifest_dir
from toolkit.runtime.executor import Executor
from toolkit.tools.python.sandbox import SandboxLimits, run_python
from toolkit.types import ErrorCode, ToolCall


def make_executor(**settings) -> Executor:
    """A registry with just the built-in python manifest (loading every built-in tool per test is slow)."""
    registry = ToolRegistry(tool_settings={"python": settings})
    registry.load_file(builtin_manifest_dir() / "python.yaml")
    assert registry.tools["python"].available, registry.tools["python"].reason
    return Executor(registry, approver="auto")  # the python tool is not read-only: the test approves


async def run(code: str, *, arguments: dict | None = None, **settings):
    obs = await make_executor(**settings).execute(
        ToolCall(id="c1", name="python", arguments={"code": code, **(arguments or {})})
    )
    return obs


@pytest.fixture()
def tcp_server():
    """A real TCP server on 127.0.0.1 that answers b"pong" to anyone who connects."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


CONNECT = """
import socket
s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
print(s.recv(4).decode())
"""


async def test_runs_code_and_captures_output():
    executor = Executor(ToolRegistry.default(entry_points=False), approver="auto")
    obs = await executor.execute(
        ToolCall(id="c1", name="python", arguments={"code": "import sys\nprint(6 * 7)\nprint('oops', file=sys.stderr)"})
    )
    assert obs.ok, obs.text
    assert obs.content["ok"] is True and obs.content["exit_code"] == 0
    assert obs.content["stdout"] == "42\n" and obs.content["stderr"] == "oops\n"
    assert isinstance(obs.content["network_isolated"], bool)


async def test_infinite_loop_is_stopped_at_the_timeout():
    obs = await run("while True: pass", timeout_s=1, cpu_s=30)
    assert obs.ok  # the tool worked; the program did not
    result = obs.content
    assert result["ok"] is False and result["timed_out"] is True
    assert "timeout" in result["reason"]


async def test_cpu_limit_stops_a_busy_program():
    obs = await run("while True: pass", timeout_s=20, cpu_s=1)
    assert obs.content["ok"] is False
    assert "CPU time limit" in obs.content["reason"]


async def test_two_gigabyte_allocation_fails_at_the_memory_limit():
    obs = await run("data = bytearray(2 * 1024**3)\nprint('allocated')", memory_mb=512)
    result = obs.content
    assert result["ok"] is False
    assert "allocated" not in result["stdout"]
    assert "MemoryError" in result["stderr"]
    assert result["reason"] == "memory limit (512 MB) exceeded"


async def test_socket_connection_from_inside_fails(tcp_server):
    # the control: with the network allowed, the same code reaches the server, so the server works
    allowed = await run(CONNECT.format(port=tcp_server), network=True)
    assert allowed.content["stdout"] == "pong\n", allowed.content
    assert allowed.content["network_isolated"] is False

    obs = await run(CONNECT.format(port=tcp_server))
    if not obs.content["network_isolated"]:
        pytest.skip(f"this kernel gives no network namespace: {obs.content['network_isolation']}")
    assert obs.content["ok"] is False
    assert "pong" not in obs.content["stdout"]
    # the launcher's namespace has no interface up (unreachable); bubblewrap's has a loopback of
    # its own with nothing listening (refused): either way the host's server is out of reach
    assert any(s in obs.content["stderr"] for s in ("Network is unreachable", "Connection refused", "OSError"))


async def test_required_isolation_and_the_result_agree():
    result = await run_python("print(1)", SandboxLimits(require_network_isolation=True))
    assert result.network_isolated  # otherwise SandboxRefused was raised
    assert result.network_isolation.endswith("namespace")


async def test_no_secrets_from_the_parent_environment(monkeypatch):
    monkeypatch.setenv("TOOLKIT_TEST_SECRET", "hunter2")
    obs = await run("import os\nprint(sorted(os.environ))\nprint(os.environ.get('TOOLKIT_TEST_SECRET'))")
    assert "hunter2" not in obs.content["stdout"]
    assert "TOOLKIT_TEST_SECRET" not in obs.content["stdout"]


async def test_fresh_working_folder_is_removed_afterwards():
    code = "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\nopen('out.txt', 'w').write('hello')"
    first = (await run(code)).content
    cwd, listing = first["stdout"].splitlines()
    assert listing == "['main.py']"
    assert first["files"] == [{"path": "out.txt", "bytes": 5}]
    assert not os.path.exists(cwd)
    second = (await run(code)).content
    assert second["stdout"].splitlines()[0] != cwd


async def test_output_is_capped():
    obs = await run("print('x' * 1_000_000)", max_output_chars=1000)
    assert obs.content["stdout_truncated"] is True
    assert len(obs.content["stdout"]) < 1200
    assert "1000001 bytes in all" in obs.content["stdout"]


async def test_file_size_limit():
    obs = await run("open('big', 'wb').write(b'0' * (4 * 1024 * 1024))", file_size_mb=1)
    assert obs.content["reason"] == "file size limit (1 MB) exceeded"


async def test_background_children_do_not_survive():
    # a distinctive duration to find the child by from outside (inside a PID namespace its pid
    # means nothing here)
    code = "import subprocess\np = subprocess.Popen(['sleep', '61.2345'])\nprint(p.pid)"
    obs = await run(code)
    assert obs.content["ok"], obs.content

    def survivors():
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            if proc.info["cmdline"] == ["sleep", "61.2345"] and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        return found

    # SIGKILL delivery is asynchronous, so poll (sleep 61 would outlive this)
    for _ in range(100):
        if not survivors():
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the background child is still running: {survivors()}")


async def test_stdin_and_exit_code():
    obs = await run("import sys\nprint(input().upper())\nsys.exit(3)", arguments={"stdin": "hello\n"})
    assert obs.content["stdout"] == "HELLO\n"
    assert obs.content["exit_code"] == 3 and obs.content["reason"] == "exit code 3"


async def test_bad_arguments_are_invalid_arguments():
    obs = await run("print(1)", arguments={"timeout_s": 1000})
    assert obs.error == ErrorCode.invalid_arguments and "at most 60" in obs.message
    obs = await run("   ")
    assert obs.error == ErrorCode.invalid_arguments
    obs = await make_executor().execute(ToolCall(id="c", name="python", arguments={}))
    assert obs.error == ErrorCode.invalid_arguments and "code" in obs.message


async def test_standard_library_only_mode():
    obs = await run("import sys\nprint(any('site-packages' in p for p in sys.path))", site_packages=False)
    assert obs.content["stdout"] == "False\n"


THREADS_AS_NOBODY = """
import threading, time
for _ in range(120):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="the jail drops ids only when root")
async def test_a_busy_nobody_leaves_the_code_its_process_budget():
    # Chromium runs as `nobody` (the browser's chromium_user); its threads count against the
    # RLIMIT_NPROC of whichever user has them, so code run as `nobody` could not even start
    # (execve: EAGAIN) while a browser was open. The code runs as a user id of its own.
    import subprocess

    # /usr/bin/python3: the venv's folder may be closed to nobody
    argv = ["/usr/bin/python3", "-I", "-c", THREADS_AS_NOBODY]
    busy = subprocess.Popen(argv, user=65534, group=65534, stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout is not None and busy.stdout.readline().strip() == "ready"
        code = "import os, threading\nprint(os.getuid())\nfor _ in range(8): threading.Thread(target=len, args=('',)).start()"
        first, second = (obs.content for obs in await asyncio.gather(run(code), run(code)))
    finally:
        busy.kill()
        busy.wait()
    for result in (first, second):
        assert result["ok"] is True, result
    uids = {int(first["stdout"]), int(second["stdout"])}
    assert 65534 not in uids and 0 not in uids
    assert len(uids) == 2  # each run its own budget, and neither can signal the other
