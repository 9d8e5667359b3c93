"""Bindings turn a manifest's actions into callables: python, http, openapi, mcp.

`make_bindings(manifest, base_dir)` returns the manifest (with discovered actions filled in, for
openapi and mcp) and one ActionBinding per action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from toolkit.manifest import Manifest


@dataclass
class ToolContext:
    """What a tool function may ask for by declaring a parameter named `ctx`.

    A dataclass, not a pydantic model: `state` must be the executor's own dict (validation would
    copy it, and the state would not survive to the next call).
    """

    session_id: str = "default"
    tool: str = ""
    action: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    # per (session, tool), kept across calls; its "__close__" callable runs when the session's task ends
    state: dict[str, Any] = field(default_factory=dict)
    # per tool, shared by every session of one executor (one agent); its "__close__" runs when the
    # agent closes: for what outlives a task, like a server connection a batch's tasks share
    shared_state: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


class ActionBinding(Protocol):
    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> Any: ...

    # where a call goes and what it carries, as plain JSON data; `toolkit tools lock` pins it.
    # Optional: a binding without it is described by its class alone.
    # def destination(self) -> dict[str, Any]: ...


def binding_destination(binding: ActionBinding) -> dict[str, Any]:
    describe = getattr(binding, "destination", None)
    if callable(describe):
        return describe()
    return {"type": f"{type(binding).__module__}.{type(binding).__qualname__}"}


class BindingError(Exception):
    """A binding could not be built (module missing, spec unreadable...). Makes the tool unavailable."""


class ToolInputError(ValueError):
    """Raised by a tool whose arguments pass the schema but can't be used (an unparseable or unsafe
    expression, an unknown unit...). The executor reports it as `invalid_arguments`, not retried."""


def make_bindings(manifest: Manifest, base_dir: Path | None) -> tuple[Manifest, dict[str, ActionBinding]]:
    """Raises BindingError for anything that goes wrong, discovered actions that don't validate included."""
    try:
        return _make_bindings(manifest, base_dir)
    except ValidationError as exc:  # an action an OpenAPI spec or MCP server describes is unusable
        first = exc.errors(include_url=False)[0]
        where = "/".join(str(p) for p in first["loc"])
        raise BindingError(f"a discovered action is invalid at {where or '/'}: {first['msg']}") from None


def _make_bindings(manifest: Manifest, base_dir: Path | None) -> tuple[Manifest, dict[str, ActionBinding]]:
    kind = manifest.binding.type
    if kind == "python":
        from toolkit.bindings.python import python_bindings

        return manifest, python_bindings(manifest)
    if kind == "http":
        from toolkit.bindings.http import http_bindings

        return manifest, http_bindings(manifest)
    if kind == "openapi":
        from toolkit.bindings.openapi import openapi_bindings

        return openapi_bindings(manifest, base_dir)
    from toolkit.bindings.mcp import mcp_bindings

    return mcp_bindings(manifest, base_dir)
