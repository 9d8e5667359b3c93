"""Faults end as an observation or an error status, and the task returns (T7).

Tools that raise, hang or return garbage; a backend whose server returns 500s, never answers, or
cuts a stream. The server is a real HTTP server on 127.0.0.1 that misbehaves on purpose.
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import pytest

from tests.fixtures.plugin_server import serve_handler
from toolkit import Agent, ToolRegistry, tool
from toolkit.models.openai import OpenAIBackend
from toolkit.models.scripted import ScriptedBackend
from toolkit.types import ErrorCode


class GarbageObject:
    def __repr__(self) -> str:
        raise RuntimeError("even repr fails")


@tool
def explode() -> str:
    """Raise."""
    raise ZeroDivisionError("boom")


@tool(timeout_s=0.3)
def stall() -> str:
    """Hang far past the timeout."""
    time.sleep(60)
    return "never"


@tool
def garbage() -> object:
    """Return something that is neither JSON nor printable."""
    return {"bytes": b"\xff\xfe\x00", "obj": GarbageObject(), "nan": float("nan")}


@tool
def binary() -> bytes:
    """Return invalid UTF-8."""
    return b"\xc3\x28\xa0\xa1" * 1000


def test_failing_tools_become_observations_and_the_task_returns():
    registry = ToolRegistry()
    for fn in (explode, stall, garbage, binary):
        registry.add_function(fn)
    backend = ScriptedBackend(
        [
            {"tool_calls": [{"name": n, "arguments": {}} for n in ("explode", "stall", "garbage", "binary")]},
            {"text": "done anyway"},
        ]
    )
    started = time.perf_counter()
    result = Agent(model=backend, tools=registry, approver="auto").run("try everything")
    assert time.perf_counter() - started < 30  # the hung tool did not hold the task
    assert result.status == "ok" and result.answer == "done anyway"
    by_name = {o.name: o for o in result.observations}
    assert by_name["explode"].error == ErrorCode.tool_error and "boom" in by_name["explode"].message
    assert by_name["stall"].error == ErrorCode.timeout
    assert by_name["garbage"].ok and isinstance(by_name["garbage"].text, str)
    assert by_name["binary"].ok and "\ufffd" in by_name["binary"].text
    result.model_dump_json()  # the whole result still serialises


class FaultyServer(BaseHTTPRequestHandler):
    mode = "500"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if FaultyServer.mode == "500":
            self.send_response(500)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        elif FaultyServer.mode == "hang":
            time.sleep(5)
        elif FaultyServer.mode == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n')
            self.wfile.flush()
            self.connection.shutdown(2)  # the stream stops mid-answer

    do_GET = do_POST


@pytest.fixture(scope="module")
def faulty_url():
    server, url = serve_handler(FaultyServer)
    yield f"{url}/v1"
    server.shutdown()


@pytest.mark.parametrize(
    "mode,options",
    [
        ("500", {"max_retries": 2, "backoff_s": 0.01}),
        ("hang", {"max_retries": 0, "timeout_s": 0.5}),
        ("cut", {"max_retries": 0, "stream": True}),
    ],
)
def test_backend_faults_end_as_an_error_status(faulty_url, mode, options):
    FaultyServer.mode = mode
    backend = OpenAIBackend("m", faulty_url, api_key="k", **options)
    registry = ToolRegistry()
    registry.add_function(explode)
    result = Agent(model=backend, tools=registry, approver="auto").run("hello")
    assert result.status == "error" and result.error
    assert result.trace[-1].kind == "task_end"
