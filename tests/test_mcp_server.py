"""`toolkit serve mcp`: the official SDK's client lists and calls our tools, over stdio (spawning
the CLI) and over streamable HTTP on 127.0.0.1; and the round trip through our own client binding."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters  # noqa: E402

from tests.mcp_servers import free_port, start_http_server, stop  # noqa: E402
from toolkit.registry import ToolRegistry  # noqa: E402
from toolkit.runtime.executor import Executor  # noqa: E402
from toolkit.types import ErrorCode, ToolCall  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def serve_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", "serve", "mcp", "--tools-path", str(FIXTURES / "echo.yaml"), *flags]


def server_env(isolated_home: Path) -> dict[str, str]:
    # the subprocess imports tests.fixtures.echo_tools from the repo, and sees no user config
    return {"PYTHONPATH": str(REPO), "TOOLKIT_HOME": str(isolated_home)}


@pytest.mark.slow  # starts `toolkit serve mcp` as a subprocess: ~4 s of CPU
async def test_stdio_server_lists_and_calls_tools(isolated_home):
    command = serve_command("--tools", "echo,math.calculate")
    params = StdioServerParameters(command=command[0], args=command[1:], env=server_env(isolated_home), cwd=str(REPO))
    async with Client(params) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        # `echo.echo` is named `echo`: an action bearing its tool's name is called by the tool's name
        assert {"echo", "echo.upper", "echo.slow", "echo.wipe", "math.calculate"} <= set(listed)
        assert "math.solve" not in listed  # --tools picks
        echo = listed["echo"]
        assert echo.description == "Return the text."
        assert echo.input_schema["required"] == ["text"]
        assert echo.annotations.read_only_hint is True and echo.annotations.idempotent_hint is True
        assert listed["echo.wipe"].annotations.destructive_hint is True

        result = await client.call_tool("echo.upper", {"text": "mcp"})
        assert not result.is_error and result.content[0].text == "MCP"
        structured = await client.call_tool("echo", {"text": "hi"})
        assert structured.structured_content == {"text": "hi"}
        exact = await client.call_tool("math.calculate", {"expression": "2**70"})
        assert not exact.is_error and "1180591620717411303424" in exact.content[0].text

        # our executor's errors come back flagged, with their code
        invalid = await client.call_tool("echo.upper", {"text": 3})
        assert invalid.is_error and "invalid_arguments" in invalid.content[0].text
        timeout = await client.call_tool("echo.slow", {"seconds": 5})
        assert timeout.is_error and "timeout" in timeout.content[0].text
        unknown = await client.call_tool("echo.nope", {})
        assert unknown.is_error and "unknown_tool" in unknown.content[0].text


@pytest.fixture(scope="module")
def http_serve(tmp_path_factory):
    port = free_port()
    env = {**os.environ, **server_env(tmp_path_factory.mktemp("serve_home"))}
    command = serve_command(
        "--transport", "http", "--port", str(port), "--separator", "__", "--approve", "deny", "--tools", "echo"
    )
    process = start_http_server(command, port, env=env, cwd=str(REPO))
    yield f"http://127.0.0.1:{port}/mcp"
    stop(process)


async def test_http_server_with_underscore_names_and_deny_policy(http_serve):
    async with Client(http_serve) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"echo", "echo__remember", "echo__upper"} <= names and "echo.upper" not in names
        first = await client.call_tool("echo__remember", {"value": "a"})
        second = await client.call_tool("echo__remember", {"value": "b"})
        before = first.structured_content["values"]
        assert before[-1] == "a"
        assert second.structured_content["values"] == [*before, "b"]  # tool state lives for the server's life
        denied = await client.call_tool("echo__wipe", {"text": "everything"})
        assert denied.is_error and "denied" in denied.content[0].text


async def test_round_trip_through_our_client_binding(http_serve, tmp_path):
    """Our MCP server, consumed by our MCP client binding: a manifest of a manifest."""
    (tmp_path / "remote.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "remote",
                "description": "The echo tools, over MCP.",
                "binding": {"type": "mcp", "url": http_serve},
            }
        )
    )
    registry = ToolRegistry.default([tmp_path], builtin=False, entry_points=False)
    remote = registry.tools["remote"]
    assert remote.available, remote.reason
    actions = {a.name: a for a in remote.manifest.actions}
    assert actions["echo"].annotations.read_only and not actions["echo"].annotations.open_world
    assert actions["echo__wipe"].annotations.destructive
    executor = Executor(registry)
    try:
        obs = await executor.execute(ToolCall(name="remote.echo__upper", arguments={"text": "round trip"}))
        assert obs.ok and obs.content == "ROUND TRIP"
        bad = await executor.execute(ToolCall(name="remote.echo__upper", arguments={}))
        assert bad.error == ErrorCode.invalid_arguments  # the exported schema is enforced on our side too
    finally:
        await executor.aclose()
