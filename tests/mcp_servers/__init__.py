"""Real MCP servers for tests, and helpers to run them (stdio command lines, an HTTP subprocess)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ECHO_SERVER = Path(__file__).with_name("echo_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = getattr(process, "stderr_log", None)
            tail = ""
            if log is not None:
                log.seek(0)
                tail = log.read()[-2000:]
            raise RuntimeError(f"server exited with {process.returncode}: {tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def start_http_server(
    args: list[str], port: int, env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen:
    """Start a server subprocess listening on 127.0.0.1:port and wait until it accepts connections."""
    # stderr to a file, not a pipe: a pipe nobody reads would block a chatty server once full
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, text=True, env=env, cwd=cwd)
    process.stderr_log = log  # type: ignore[attr-defined]
    try:
        wait_for_port(port, process)
    except Exception:
        process.kill()
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def echo_http_server(port: int) -> subprocess.Popen:
    return start_http_server([sys.executable, str(ECHO_SERVER), "--http", str(port)], port)
