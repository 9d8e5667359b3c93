"""A real MCP server for tests, written with the official SDK (`MCPServer`, FastMCP's v2 name).

Run: `python echo_server.py` (stdio) or `python echo_server.py --http PORT` (streamable HTTP on
127.0.0.1:PORT, path /mcp). Its tools cover what the client binding maps: annotations, structured
and text results, a tool error (`isError`), a slow call, a call that kills the server, and a dotted name that is not a valid
action name on our side.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("echo-test", log_level="WARNING")
_counter = {"n": 0}


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False))
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False))
def add(a: int, b: int) -> dict:
    """Add two integers; returns {"sum": a + b}."""
    return {"sum": a + b}


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False))
def count() -> int:
    """Increment a counter kept by the server process and return it (state across calls)."""
    _counter["n"] += 1
    return _counter["n"]


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the given reason."""
    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then say so."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def crash() -> str:
    """Kill the server process mid-call (to test that the client survives a dying server)."""
    os._exit(3)


@server.tool(name="env.get", annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
def env_get(name: str) -> str:
    """Read an environment variable of the server process."""
    return os.environ.get(name, "")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
