"""The `mcp` client binding against a real MCP server subprocess (official SDK), over stdio and
streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mcp")

from tests.mcp_servers import ECHO_SERVER, echo_http_server, free_port, stop  # noqa: E402
from toolkit.models.scripted import ScriptedBackend  # noqa: E402
from toolkit.registry import ToolRegistry  # noqa: E402
from toolkit.runtime.agent import Agent  # noqa: E402
from toolkit.runtime.executor import Executor  # noqa: E402
from toolkit.types import ErrorCode, ToolCall  # noqa: E402


def write_manifest(folder: Path, name: str, binding: dict, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": f"{name} test server", "binding": binding, **extra}))
    return path


def load(folder: Path) -> ToolRegistry:
    return ToolRegistry.default([folder], builtin=False, entry_points=False)


@pytest.fixture(scope="module")
def stdio_registry(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("TOOLKIT_MCP_SECRET", "s3cret")
    folder = tmp_path_factory.mktemp("mcp_stdio")
    write_manifest(
        folder,
        "echo_mcp",
        {"type": "mcp", "command": ["python", str(ECHO_SERVER)], "env": {"ECHO_SECRET": "${TOOLKIT_MCP_SECRET}"}},
    )
    return load(folder)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def http_server():
    port = free_port()
    process = echo_http_server(port)
    yield f"http://127.0.0.1:{port}/mcp"
    stop(process)


def test_stdio_discovery_maps_tools_to_actions(stdio_registry):
    tool = stdio_registry.tools["echo_mcp"]
    assert tool.available, tool.reason
    actions = {a.name: a for a in tool.manifest.actions}
    assert set(actions) == {"echo", "add", "count", "fail", "sleep", "crash", "env_get"}  # `env.get` made a valid name
    assert actions["echo"].description == "Return the text unchanged."
    assert actions["add"].input_schema["required"] == ["a", "b"]
    assert actions["add"].input_schema["properties"]["a"]["type"] == "integer"
    echo = actions["echo"].annotations
    assert (echo.read_only, echo.idempotent, echo.open_world, echo.destructive) == (True, True, False, False)
    count = actions["count"].annotations
    assert (count.read_only, count.destructive, count.open_world) == (False, True, False)
    # no hints at all: MCP's defaults (destructive, open world) so the approval policy applies
    fail = actions["fail"].annotations
    assert (fail.read_only, fail.destructive, fail.open_world) == (False, True, True)
    assert [s.name for s in stdio_registry.specs(["echo_mcp.add"])] == ["echo_mcp.add"]


async def test_stdio_calls_results_and_errors(stdio_registry):
    executor = Executor(stdio_registry, approver="auto")  # `fail` has no hints: not read-only
    try:
        add = await executor.execute(ToolCall(name="echo_mcp.add", arguments={"a": 2, "b": 40}))
        assert add.ok and add.content == {"sum": 42}
        echo = await executor.execute(ToolCall(name="echo_mcp.echo", arguments={"text": "héllo"}))
        assert echo.ok and echo.content == "héllo" and echo.text == "héllo"
        env = await executor.execute(ToolCall(name="echo_mcp.env_get", arguments={"name": "ECHO_SECRET"}))
        # binding.env, ${VAR} expanded, reaches the server; a variable the tool hands on is a secret,
        # so its value comes back redacted
        assert env.ok and env.content == "[REDACTED:TOOLKIT_MCP_SECRET]"
        fail = await executor.execute(ToolCall(name="echo_mcp.fail", arguments={"reason": "boom"}))
        assert not fail.ok and fail.error == ErrorCode.tool_error and "failed on purpose: boom" in fail.message
        bad = await executor.execute(ToolCall(name="echo_mcp.add", arguments={"a": "two"}))
        assert not bad.ok and bad.error == ErrorCode.invalid_arguments
    finally:
        await executor.aclose()


@pytest.mark.slow  # server subprocesses started and stopped: ~4 s of CPU
async def test_sessions_share_one_server_which_closes_with_the_last_agent(stdio_registry):
    handle = stdio_registry.tools["echo_mcp"].bindings["count"].handle
    first, second = Executor(stdio_registry, approver="auto"), Executor(stdio_registry, approver="auto")
    counts = await first.execute_many([ToolCall(name="echo_mcp.count") for _ in range(3)], "a")
    assert sorted(o.content for o in counts) == [1, 2, 3]
    more = await second.execute(ToolCall(name="echo_mcp.count"), "b")
    assert more.content == 4  # the same server process: its counter went on
    await first.close_session("a")
    assert handle.connection.is_open  # a task's end does not close the server its agent shares
    await first.aclose()
    assert handle.connection.is_open  # `b` still uses it
    await second.aclose()
    assert not handle.connection.is_open
    third = Executor(stdio_registry, approver="auto")
    try:
        again = await third.execute(ToolCall(name="echo_mcp.count"), "c")
        assert again.ok and again.content == 1  # reopened: a fresh server
    finally:
        await third.aclose()


@pytest.mark.slow  # a server subprocess killed and restarted: ~3.5 s of CPU
async def test_a_server_that_dies_is_restarted_by_the_next_call(stdio_registry):
    executor = Executor(stdio_registry, approver="auto")  # `count` is destructive
    try:
        before = await executor.execute(ToolCall(name="echo_mcp.count"))
        assert before.ok and before.content == 1
        crash = await executor.execute(ToolCall(name="echo_mcp.crash"))
        assert not crash.ok and crash.error == ErrorCode.tool_error and "went away" in crash.message
        after = await executor.execute(ToolCall(name="echo_mcp.count"))
        assert after.ok and after.content == 1  # a new server process: its counter starts again
    finally:
        await executor.aclose()


@pytest.mark.slow  # its own server subprocess, and a call left to time out: ~4 s of CPU
async def test_timeout_cancels_the_call_and_the_session_survives(tmp_path):
    write_manifest(
        tmp_path,
        "slow_mcp",
        {"type": "mcp", "command": [sys.executable, str(ECHO_SERVER)]},
        actions=[
            {
                "name": "sleep",
                "description": "Sleep.",
                "timeout_s": 0.5,
                "input_schema": {
                    "type": "object",
                    "properties": {"seconds": {"type": "number"}},
                    "required": ["seconds"],
                },
            },
            {
                "name": "env_get",
                "function": "env.get",
                "description": "Read a variable.",
                "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
        ],
    )
    registry = load(tmp_path)
    tool = registry.tools["slow_mcp"]
    assert tool.available, tool.reason
    assert [a.name for a in tool.manifest.actions] == ["sleep", "env_get"]  # declared actions restrict
    executor = Executor(registry, approver="auto")  # declared without annotations: not read-only
    try:
        # the first call starts the server (not bounded by `sleep`'s short timeout)
        path = await executor.execute(ToolCall(name="slow_mcp.env_get", arguments={"name": "PATH"}))
        assert path.ok and path.content
        late = await executor.execute(ToolCall(name="slow_mcp.sleep", arguments={"seconds": 30}))
        assert not late.ok and late.error == ErrorCode.timeout
        quick = await executor.execute(ToolCall(name="slow_mcp.sleep", arguments={"seconds": 0.01}))
        assert quick.ok and quick.content == "slept 0.01"
    finally:
        await executor.aclose()


def test_broken_servers_are_unavailable_with_a_reason(tmp_path):
    write_manifest(tmp_path, "missing", {"type": "mcp", "command": ["/nonexistent/mcp-server"]})
    crash = "import sys; sys.stderr.write('kaboom: no config\\n'); sys.exit(3)"
    write_manifest(tmp_path, "crashing", {"type": "mcp", "command": [sys.executable, "-c", crash]})
    write_manifest(
        tmp_path,
        "unreachable",
        {"type": "mcp", "url": f"http://127.0.0.1:{free_port()}/mcp"},
        settings={"connect_timeout_s": 10},
    )
    write_manifest(
        tmp_path,
        "undeclared",
        {"type": "mcp", "command": [sys.executable, str(ECHO_SERVER)]},
        actions=[{"name": "nope", "description": "Not on the server."}],
    )
    registry = load(tmp_path)
    reasons = {name: tool.reason for name, tool in registry.tools.items()}
    assert not any(t.available for t in registry.tools.values())
    assert "No such file" in reasons["missing"] and "/nonexistent/mcp-server" in reasons["missing"]
    assert "kaboom: no config" in reasons["crashing"]
    assert "127.0.0.1" in reasons["unreachable"]
    assert "no tool 'nope'" in reasons["undeclared"]
    obs = asyncio.run(Executor(registry).execute(ToolCall(name="missing.echo")))
    assert obs.error == ErrorCode.unavailable and "No such file" in obs.message


async def test_streamable_http_discovery_and_parallel_calls(http_server, tmp_path):
    write_manifest(tmp_path, "echo_http", {"type": "mcp", "url": http_server})
    registry = load(tmp_path)
    tool = registry.tools["echo_http"]
    assert tool.available, tool.reason
    assert {"echo", "add", "env_get"} <= {a.name for a in tool.manifest.actions}
    executor = Executor(registry, approver="auto")  # `fail` has no hints: not read-only
    try:
        sums = await executor.execute_many(
            [ToolCall(name="echo_http.add", arguments={"a": i, "b": 100}) for i in range(4)]
        )
        assert [o.content for o in sums] == [{"sum": 100}, {"sum": 101}, {"sum": 102}, {"sum": 103}]
        fail = await executor.execute(ToolCall(name="echo_http.fail", arguments={"reason": "over http"}))
        assert fail.error == ErrorCode.tool_error and "over http" in fail.message
    finally:
        await executor.aclose()


def test_agent_uses_an_mcp_tool_end_to_end(stdio_registry):
    backend = ScriptedBackend(
        [
            {"tool_calls": [{"name": "echo_mcp.add", "arguments": {"a": 19, "b": 23}}]},
            {"text": "19 + 23 = 42"},
        ]
    )
    agent = Agent(model=backend, tools=stdio_registry, tool_names=["echo_mcp"])
    result = agent.run("What is 19 + 23?")
    assert result.status == "ok" and result.answer == "19 + 23 = 42"
    assert result.observations[0].ok and result.observations[0].content == {"sum": 42}
    assert not stdio_registry.tools["echo_mcp"].bindings["add"].handle.connection.is_open  # closed with the agent
