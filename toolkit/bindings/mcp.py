"""The `mcp` binding: an MCP server's tools become a tool's actions.

    binding: {type: mcp, command: [python, server.py]}     # stdio: spawned, cwd = the manifest's folder
    binding: {type: mcp, url: http://127.0.0.1:8000/mcp}   # streamable HTTP

Discovery runs at registry load: connect, list the tools, disconnect (loading a registry must not
leave servers running). Actions listed in the manifest restrict and override what is found; an
action's `function` names its MCP tool when the name isn't a valid action name (`env.get`).

Calls share one session per tool and process (see mcp_connection.py for why the session lives
on a loop of its own). It opens on the first call, is counted in by every executor (agent) that
uses it, and is closed when the last of them closes (`Executor.aclose` runs the `__close__` each
executor put in the tool's shared state, not at a task's end); the next call reopens it. One
server process per tool rather than per task: MCP servers are built to serve many calls over one
session, and a batch of 64 tasks, or of 10,000 run one after another, should not spawn a server
per task. A server that dies is restarted by the next call.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from toolkit.bindings import ActionBinding, BindingError, ToolContext
from toolkit.manifest import Action, Manifest, MCPBinding, env_references, expand_env

DEFAULT_CONNECT_TIMEOUT_S = 30.0


class MCPServerHandle:
    """The connection of one tool, shared by its actions, counted in by the executors using it."""

    def __init__(self, connection: Any, server: dict[str, Any] | None = None):
        self.connection = connection
        self.server = server or {}  # what the lock pins: command or URL, env templates, folder
        self._users = 0
        self._lock = threading.Lock()

    def join(self, ctx: ToolContext) -> None:
        if "__close__" in ctx.shared_state:
            return
        with self._lock:
            self._users += 1
        ctx.shared_state["__close__"] = self.leave

    async def leave(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users <= 0
            self._users = max(self._users, 0)
        if last:
            await self.connection.aclose()


class MCPToolBinding:
    def __init__(self, handle: MCPServerHandle, mcp_name: str):
        self.handle = handle
        self.mcp_name = mcp_name

    def destination(self) -> dict[str, Any]:
        return {"type": "mcp", **self.handle.server, "tool": self.mcp_name}

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        from toolkit.interop.mcp import content_from_result

        self.handle.join(ctx)
        result = await self.handle.connection.call(self.mcp_name, arguments)
        return content_from_result(result)


def server_target(binding: MCPBinding, base_dir: Path | None, environ: dict[str, str] | None = None) -> tuple[Any, str]:
    """The SDK's connection target (a URL or stdio parameters) and a label for messages."""
    from mcp import StdioServerParameters

    if binding.url:
        return binding.url, binding.url
    command = list(binding.command or [])
    if not command:
        raise BindingError("`binding.command` is empty")
    # `python` means this interpreter, so a server written in Python finds the same packages
    if command[0] in ("python", "python3"):
        command[0] = sys.executable
    env = {k: expand_env(v, environ if environ is not None else dict(os.environ)) for k, v in binding.env.items()}
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=env or None, cwd=str(base_dir) if base_dir else None
    )
    return params, " ".join(command)


def server_description(binding: MCPBinding, base_dir: Path | None) -> dict[str, Any]:
    """Where the server is, as the lock pins it: the URL, or the command with its program
    resolved on PATH (another `npx` earlier on PATH is another server), the environment as
    templates (`${VAR}`, never a value) and the folder it starts in."""
    if binding.url:
        return {"url": binding.url}
    command = list(binding.command or [])
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable
    elif command:
        command[0] = shutil.which(command[0]) or command[0]
    return {
        "command": command,
        "env": dict(sorted(binding.env.items())),
        "sends_env": sorted({n for v in binding.env.values() for n in env_references(v)}),
        "cwd": str(base_dir) if base_dir else None,
    }


def mcp_bindings(manifest: Manifest, base_dir: Path | None) -> tuple[Manifest, dict[str, ActionBinding]]:
    try:
        from toolkit.bindings.mcp_connection import MCPConnection, MCPConnectionError
        from toolkit.interop.mcp import action_from_mcp_tool
    except ImportError as exc:
        raise BindingError(f"the `mcp` package is needed for MCP tools ({exc}); install toolkit[mcp]") from None
    binding = manifest.binding
    assert isinstance(binding, MCPBinding)
    timeout = float(manifest.settings.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S))
    target, label = server_target(binding, base_dir)
    connection = MCPConnection(target, label, connect_timeout_s=timeout)
    try:
        tools = connection.list_tools_sync()
    except MCPConnectionError as exc:
        raise BindingError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the tool is unavailable, not the registry
        raise BindingError(f"cannot list the tools of MCP server {label}: {type(exc).__name__}: {exc}") from None
    finally:
        connection.close()
    if not tools:
        raise BindingError(f"MCP server {label} offers no tools")

    default_timeout = float(manifest.settings.get("timeout_s", 30.0))
    found: dict[str, tuple[str, Action]] = {}  # action name -> (MCP name, action)
    for tool in tools:
        action = action_from_mcp_tool(tool, timeout_s=default_timeout)
        name = action.name
        n = 2
        while name in found:  # two MCP names that sanitize alike (`a.b`, `a_b`) stay distinct
            name = f"{action.name}_{n}"
            n += 1
        found[name] = (tool.name, action.model_copy(update={"name": name}))
    by_mcp_name = {mcp_name: name for name, (mcp_name, _) in found.items()}

    actions: list[Action] = []
    mcp_names: dict[str, str] = {}
    if manifest.actions:
        for declared in manifest.actions:
            key = declared.name if declared.name in found else by_mcp_name.get(declared.function or "")
            if key is None:
                raise BindingError(
                    f"MCP server {label} has no tool {declared.function or declared.name!r}; it has: {', '.join(t.name for t in tools)}"
                )
            actions.append(declared)
            mcp_names[declared.name] = found[key][0]
    else:
        for name, (mcp_name, action) in found.items():
            actions.append(action)
            mcp_names[name] = mcp_name
    handle = MCPServerHandle(connection, server_description(binding, base_dir))
    bindings: dict[str, ActionBinding] = {
        name: MCPToolBinding(handle, mcp_name) for name, mcp_name in mcp_names.items()
    }
    return manifest.model_copy(update={"actions": actions}), bindings
