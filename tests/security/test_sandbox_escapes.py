"""Known escape attempts against the python tool (T5). None may succeed.

Each attempt is real code run in the real sandbox. What "succeeds" means is checked outside the
sandbox: a planted secret file or environment variable shows up in the output, the parent process
is hurt, a file appears outside the work folder, a process outlives the run, a connection is made.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from toolkit import ToolRegistry
from toolkit.runtime.executor import Executor
from toolkit.tools.python.sandbox import SandboxLimits, run_python
from toolkit.types import ToolCall

SECRET = "planted-secret-7c1d2e9f"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A secret in a private file outside the sandbox, and in the parent's environment."""
    folder = tmp_path_factory.mktemp("outside")
    secret_file = folder / "credentials"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    os.environ["TOOLKIT_PLANTED_SECRET"] = SECRET
    yield secret_file
    os.environ.pop("TOOLKIT_PLANTED_SECRET", None)


def run(code: str, **limits) -> dict:
    # require the jail: without bubblewrap these attempts would run unconfined (and the signal
    # tests would hit this very process), so the sandbox must refuse rather than run them
    settings = {
        "timeout_s": 5,
        "cpu_s": 5,
        "memory_mb": 256,
        "max_processes": 32,
        "require_filesystem_isolation": True,
        **limits,
    }
    result = asyncio.run(run_python(code, SandboxLimits.from_settings(settings)))
    return result.to_dict()


def leaked(result: dict) -> bool:
    return SECRET in result["stdout"] or SECRET in result["stderr"]


def test_read_secret_file_outside_the_work_folder(planted):
    assert not leaked(run(f"print(open({str(planted)!r}).read())"))


def test_read_secret_file_through_a_symlink(planted):
    code = f"import os; os.symlink({str(planted)!r}, 'link'); print(open('link').read())"
    assert not leaked(run(code))


def test_walk_the_filesystem_for_the_secret(planted):
    code = f"""
import os
for root, dirs, files in os.walk({str(planted.parent.parent)!r}):
    for f in files:
        try: print(open(os.path.join(root, f)).read())
        except Exception: pass
"""
    assert not leaked(run(code))


def test_read_parent_environment(planted):
    code = "import os; print(dict(os.environ)); print(open('/proc/%d/environ' % os.getppid(), 'rb').read())"
    assert not leaked(run(code))


def test_read_every_process_environment_through_proc(planted):
    code = """
import os
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try: print(open('/proc/%s/environ' % pid, 'rb').read())
        except Exception: pass
"""
    assert not leaked(run(code))


def test_ctypes_cannot_reach_the_secret(planted):
    code = f"""
import ctypes
libc = ctypes.CDLL(None)
buf = ctypes.create_string_buffer(256)
fd = libc.open({str(planted).encode()!r}, 0)
n = libc.read(fd, buf, 255) if fd >= 0 else -1
print(fd, n, buf.value)
libc.system(b"cat {planted}")
"""
    assert not leaked(run(code))


def test_subclasses_walk_to_os_and_subprocess(planted):
    code = f"""
for cls in ().__class__.__base__.__subclasses__():
    if cls.__name__ == 'Popen':
        p = cls(['cat', {str(planted)!r}], stdout=-1, stderr=-1)
        print(p.communicate())
        break
"""
    assert not leaked(run(code))


def test_signals_to_the_parent_do_nothing():
    code = """
import os, signal
for sig in (signal.SIGTERM, signal.SIGKILL):
    try: os.kill(os.getppid(), sig)
    except Exception as e: print('refused', e)
try: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)
except Exception as e: print('refused', e)
"""
    result = run(code)
    assert result["ok"]  # the code ran to its end: this process, its parent's parent, survived it


def test_kill_every_process_it_can_see():
    code = """
import os, signal
for pid in os.listdir('/proc'):
    if pid.isdigit() and int(pid) != os.getpid():
        try: os.kill(int(pid), signal.SIGKILL)
        except Exception: pass
"""
    marker = {"alive": True}

    def heartbeat():
        while marker["alive"]:
            time.sleep(0.05)

    t = threading.Thread(target=heartbeat, daemon=True)
    t.start()
    run(code)
    os.kill(os.getpid(), 0)
    assert t.is_alive()
    marker["alive"] = False


def test_fork_bomb_is_contained():
    code = """
import os
kids = 0
try:
    while True:
        if os.fork() == 0:
            import time; time.sleep(30); os._exit(0)
        kids += 1
except OSError as e:
    print('stopped after', kids, e)
"""
    started = time.perf_counter()
    result = run(code)
    assert time.perf_counter() - started < 30
    assert "stopped after" in result["stdout"] or result["timed_out"]


def test_background_process_does_not_outlive_the_run(tmp_path):
    marker = tmp_path / "still_alive"
    tmp_path.chmod(0o777)
    code = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(2)
        open({str(marker)!r}, 'w').write('escaped')
        os._exit(0)
    os._exit(0)
print('parent done')
"""
    run(code)
    time.sleep(3)
    assert not marker.exists()


def test_write_outside_the_work_folder(tmp_path):
    tmp_path.chmod(0o777)
    target = tmp_path / "planted_by_sandbox"
    run(f"open({str(target)!r}, 'w').write('x')")
    assert not target.exists()


def test_network_connection_fails():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    result = run(f"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')")
    assert "connected" not in result["stdout"]
    with pytest.raises(socket.timeout):
        server.accept()
    server.close()


def test_memory_exhaustion_is_stopped():
    result = run("x = bytearray(2 * 1024 ** 3); print('allocated')")
    assert "allocated" not in result["stdout"] and not result["ok"]


def test_disk_exhaustion_is_stopped():
    result = run(
        "f = open('big', 'wb')\nfor _ in range(1000): f.write(b'x' * 1024 * 1024)\nprint('wrote 1 GB')", file_size_mb=8
    )
    assert "wrote 1 GB" not in result["stdout"] and not result["ok"]


def test_cpu_burn_is_stopped_at_the_timeout():
    started = time.perf_counter()
    result = run("while True: pass", timeout_s=1, cpu_s=5)
    assert not result["ok"] and time.perf_counter() - started < 10


def test_output_flood_is_capped():
    result = run("import sys\nfor _ in range(200000): sys.stdout.write('y' * 100)", max_output_chars=1000)
    assert len(result["stdout"]) <= 1000 + 200


def test_escape_attempt_through_the_registered_tool(planted):
    """The same guarantee holds on the path the model uses: registry, executor, tool settings."""
    registry = ToolRegistry.default(entry_points=False)
    if not registry.tools["python"].available:
        pytest.skip(registry.tools["python"].reason)
    obs = asyncio.run(
        Executor(registry, approver="auto").execute(
            ToolCall(name="python", arguments={"code": f"print(open({str(planted)!r}).read())"})
        )
    )
    assert SECRET not in obs.text
