"""LangChain tools both ways: our actions as `StructuredTool`s (run through our Executor, so
validation, timeouts and approval still apply), and LangChain `BaseTool`s as our tools."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from toolkit.bindings import ToolContext
from toolkit.interop.openai_schema import to_openai_name
from toolkit.manifest import Action, Annotations, Manifest, PythonBinding
from toolkit.runtime.executor import Executor
from toolkit.runtime.policy import Approver, Mode
from toolkit.types import ToolCall

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool, StructuredTool

    from toolkit.registry import RegisteredTool, ToolRegistry


def to_langchain_tools(
    registry: ToolRegistry,
    names: list[str] | None = None,
    executor: Executor | None = None,
    approver: Approver | Mode | None = None,
) -> list[StructuredTool]:
    """One StructuredTool per available action; names are OpenAI-safe (`tool__action`). Calls
    go through an Executor: without `executor` or `approver`, actions that are not declared
    read-only are denied (pass `approver="auto"` to let the LangChain side decide)."""
    from langchain_core.tools import StructuredTool

    executor = executor or Executor(registry, approver=approver)
    tools = []
    for spec in registry.specs(names):

        async def arun(_name: str = spec.name, **kwargs: Any) -> str:
            obs = await executor.execute(ToolCall(name=_name, arguments=kwargs))
            return obs.text

        def run(_name: str = spec.name, **kwargs: Any) -> str:
            return asyncio.run(arun(_name, **kwargs))

        tools.append(
            StructuredTool(
                name=to_openai_name(spec.name),
                description=spec.description,
                args_schema=spec.parameters,
                func=run,
                coroutine=arun,
            )
        )
    return tools


class LangChainToolBinding:
    def __init__(self, tool: BaseTool):
        self.tool = tool

    def destination(self) -> dict[str, Any]:
        cls = type(self.tool)
        return {"type": "langchain", "tool": f"{cls.__module__}.{cls.__qualname__}", "name": self.tool.name}

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        return await self.tool.ainvoke(arguments)


def _input_schema(tool: BaseTool) -> dict[str, Any]:
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        data = dict(schema)
    elif issubclass(schema, BaseModel):
        data = schema.model_json_schema()
    else:  # a pydantic.v1 model, which LangChain still accepts as a tool's args_schema
        data = schema.schema()
    data.pop("title", None)
    data.pop("description", None)
    data.setdefault("type", "object")
    data.setdefault("properties", {})
    return data


def add_langchain_tool(
    registry: ToolRegistry, tool: BaseTool, *, name: str | None = None, read_only: bool = False
) -> RegisteredTool | None:
    """Register a LangChain tool as a one-action tool named after it (lower-cased, `[a-z0-9_]`)."""
    tool_name = name or re.sub(r"[^a-z0-9_]", "_", tool.name.lower()).strip("_") or "langchain_tool"
    description = tool.description or tool.name
    manifest = Manifest(
        name=tool_name,
        description=description,
        binding=PythonBinding(module=type(tool).__module__),
        actions=[
            Action(
                name=tool_name,
                description=description,
                input_schema=_input_schema(tool),
                annotations=Annotations(read_only=read_only),
            )
        ],
    )
    return registry.add_manifest(
        manifest,
        source=f"langchain {type(tool).__name__} {tool.name}",
        bindings={tool_name: LangChainToolBinding(tool)},
    )
