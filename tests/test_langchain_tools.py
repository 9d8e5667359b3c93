"""LangChain tools both ways, with real langchain-core classes."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("langchain_core")

from langchain_core.tools import tool as lc_tool  # noqa: E402

from toolkit import ToolRegistry  # noqa: E402
from toolkit.interop.langchain_tools import add_langchain_tool, to_langchain_tools  # noqa: E402
from toolkit.runtime.executor import Executor  # noqa: E402
from toolkit.types import ErrorCode, ToolCall  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


async def test_export_runs_through_our_executor():
    registry = ToolRegistry()
    registry.load_file(FIXTURES / "echo.yaml")
    tools = {t.name: t for t in to_langchain_tools(registry, ["echo.upper", "echo.echo"])}
    assert set(tools) == {"echo__upper", "echo"}  # echo.echo is called `echo`
    assert await tools["echo__upper"].ainvoke({"text": "abc"}) == "ABC"
    # validation still applies: a wrong type comes back as our error observation text
    assert "invalid_arguments" in await tools["echo"].ainvoke({"text": 5})
    assert tools["echo__upper"].args["text"]["type"] == "string"


async def test_import_a_langchain_tool_and_call_it():
    @lc_tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    registry = ToolRegistry()
    add_langchain_tool(registry, multiply, read_only=True)
    (spec,) = registry.specs()
    assert spec.name == "multiply" and spec.parameters["required"] == ["a", "b"]
    executor = Executor(registry)
    obs = await executor.execute(ToolCall(name="multiply", arguments={"a": 6, "b": 7}))
    assert obs.ok and obs.content == 42
    bad = await executor.execute(ToolCall(name="multiply", arguments={"a": "six"}))
    assert bad.error == ErrorCode.invalid_arguments


async def test_import_a_tool_whose_schema_is_a_pydantic_v1_model():
    from langchain_core.tools import StructuredTool
    from pydantic import v1

    class WeatherArgs(v1.BaseModel):
        city: str

    def weather(city: str) -> str:
        return f"sunny in {city}"

    lc = StructuredTool.from_function(weather, name="weather", description="The weather.", args_schema=WeatherArgs)
    registry = ToolRegistry()
    add_langchain_tool(registry, lc, read_only=True)
    (spec,) = registry.specs()
    assert spec.parameters["properties"]["city"]["type"] == "string" and spec.parameters["required"] == ["city"]
    obs = await Executor(registry).execute(ToolCall(name="weather", arguments={"city": "Oslo"}))
    assert obs.ok and obs.content == "sunny in Oslo"
