"""The planner protocol: a strategy that turns a task into model requests and tool calls.

`run` returns the final answer, or raises MaxStepsReached / PlannerError (from the context).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from toolkit.runtime.context import RunContext


@runtime_checkable
class Planner(Protocol):
    name: str

    async def run(self, ctx: RunContext) -> str: ...
