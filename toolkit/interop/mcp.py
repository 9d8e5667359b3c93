"""The manifest ⇄ MCP projection: MCP tools become actions (client binding) and actions become
MCP tools (`toolkit serve mcp`); MCP call results become content, observations become results.

Annotations follow MCP's defaults when a hint is absent: a tool that isn't read-only is assumed
destructive, and every tool open-world. That is the safe reading: an unannotated server tool runs
only under the approval policy the user chose (DESIGN.md, principle 4).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from toolkit.manifest import ACTION_PATTERN, Action, Annotations, Manifest
from toolkit.schema_validation import schema_problems

if TYPE_CHECKING:  # mcp is an optional dependency: imported where used
    from mcp.types import CallToolResult, Tool, ToolAnnotations

    from toolkit.types import Observation

_ACTION_RE = re.compile(ACTION_PATTERN)
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class MCPToolError(Exception):
    """The server ran the tool and reported a failure (`isError`); the message is its text."""


def action_name_for(mcp_name: str) -> str:
    """An MCP tool name as an action name ([A-Za-z0-9_]+): other characters become `_`."""
    if _ACTION_RE.match(mcp_name):
        return mcp_name
    return re.sub(r"[^A-Za-z0-9_]", "_", mcp_name).strip("_") or "tool"


def annotations_from_mcp(hints: ToolAnnotations | None) -> Annotations:
    hints_dict = hints.model_dump() if hints is not None else {}
    read_only = bool(hints_dict.get("read_only_hint") or False)
    destructive = hints_dict.get("destructive_hint")
    open_world = hints_dict.get("open_world_hint")
    return Annotations(
        read_only=read_only,
        # MCP: destructiveHint defaults to true, and only means something when not read-only
        destructive=False if read_only else (True if destructive is None else bool(destructive)),
        idempotent=bool(hints_dict.get("idempotent_hint") or read_only),
        open_world=True if open_world is None else bool(open_world),
    )


def annotations_to_mcp(annotations: Annotations, title: str | None = None) -> ToolAnnotations:
    from mcp.types import ToolAnnotations

    return ToolAnnotations(
        title=title,
        read_only_hint=annotations.read_only,
        destructive_hint=annotations.destructive,
        idempotent_hint=annotations.idempotent,
        open_world_hint=annotations.open_world,
    )


def _valid_schema(schema: Any) -> dict[str, Any] | None:
    if not isinstance(schema, dict):
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return None
    return None if schema_problems(schema) else schema  # a remote $ref, say: never fetched


def is_wrapped_output(schema: dict[str, Any] | None) -> bool:
    """The SDK wraps a non-object return value as {"result": value}; its output schema says so."""
    return (
        schema is not None and set(schema.get("properties", {})) == {"result"} and schema.get("required") == ["result"]
    )


def action_from_mcp_tool(tool: Tool, timeout_s: float = 30.0) -> Action:
    output_schema = _valid_schema(tool.output_schema)
    return Action(
        name=action_name_for(tool.name),
        description=(
            tool.description or (tool.annotations.title if tool.annotations else None) or f"MCP tool {tool.name}"
        )[:2000],
        input_schema=_valid_schema(tool.input_schema) or dict(EMPTY_SCHEMA),
        output_schema=None if is_wrapped_output(output_schema) else output_schema,
        annotations=annotations_from_mcp(tool.annotations),
        timeout_s=timeout_s,
    )


def content_from_result(result: CallToolResult) -> Any:
    """What a call returned, as our content: structured content when given, else the text.

    Raises MCPToolError for a result flagged `isError`, so that the executor makes it a
    `tool_error` observation the model can read.
    """
    text = _text_of(result.content)
    if result.is_error:
        raise MCPToolError(text or "the MCP tool reported an error without a message")
    structured = result.structured_content
    if structured is not None:
        if isinstance(structured, dict) and set(structured) == {"result"}:
            return structured["result"]
        return structured
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _text_of(blocks: list[Any]) -> str:
    parts = []
    for block in blocks:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '')}, {len(getattr(block, 'data', ''))} base64 chars]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource: {resource.uri}]")
        else:
            parts.append(f"[{kind or type(block).__name__}]")
    return "\n".join(parts)


# ---- export: our actions as MCP tools ------------------------------------------------------


def mcp_tool_name(qualified: str, separator: str = ".") -> str:
    """`tool.action` as an MCP tool name; `separator="__"` suits hosts that refuse dots."""
    return qualified.replace(".", separator) if separator != "." else qualified


def mcp_tool_from_action(manifest: Manifest, action: Action, name: str) -> Tool:
    from mcp.types import Tool

    schema = dict(action.input_schema)
    schema.setdefault("type", "object")  # MCP wants an object schema at the root
    return Tool(
        name=name,
        description=action.description,
        input_schema=schema,
        annotations=annotations_to_mcp(action.annotations, title=f"{manifest.name}: {action.name}"),
    )


def result_from_observation(obs: Observation) -> CallToolResult:
    """An Observation as an MCP result: errors flagged `isError` with the code in the text."""
    from mcp.types import CallToolResult, TextContent

    if not obs.ok:
        return CallToolResult(
            content=[TextContent(type="text", text=obs.text or obs.message or "error")], is_error=True
        )
    structured = obs.content if isinstance(obs.content, dict) else None
    return CallToolResult(content=[TextContent(type="text", text=obs.text)], structured_content=structured)
