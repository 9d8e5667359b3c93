"""Engine overhead per step: toolkit vs LangGraph on the same scripted work.

Workload (the same for both): a scripted model calls a no-op tool 5 times, then answers; 300
tasks, run one after another. The model costs nothing, so what is measured is the engine: prompt
assembly, call validation, dispatch, traces. LangGraph's agent is `langchain.agents.create_agent`
with a scripted chat model, built once.

    python benchmarks/overhead.py [--tasks 300] [--calls 5]

Prints CPU microseconds per step (a step = one model turn) for each and the ratio: CPU time of
the whole process (all threads), so that a busy shared machine does not skew the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any


def noop(x: int) -> str:
    """Do nothing and say so."""
    return "ok"


async def noop_async(x: int) -> str:
    """Do nothing and say so."""
    return "ok"


def run_toolkit(tasks: int, calls: int, tool_fn) -> float:
    from toolkit import Agent, ToolRegistry
    from toolkit.runtime.llm.scripted import ScriptedBackend

    script = [{"tool_calls": [{"name": tool_fn.__name__, "arguments": {"x": i}}]} for i in range(calls)] + [{"text": "done"}]
    registry = ToolRegistry()
    registry.add_function(tool_fn)
    agent = Agent(model=ScriptedBackend(script), tools=registry)

    async def main() -> float:
        await agent.arun("warm up")
        started = time.process_time()
        for i in range(tasks):
            result = await agent.arun(f"task {i}")
            assert result.answer == "done" and len(result.calls) == calls, result
        return time.process_time() - started

    return asyncio.run(main())


def run_langgraph(tasks: int, calls: int) -> float:
    from langchain.agents import create_agent
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool

    class ScriptedChatModel(BaseChatModel):
        """The same script as toolkit's scripted backend: reply by the number of AI turns so far."""

        calls: int = 5

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
            return self

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            turn = sum(1 for m in messages if isinstance(m, AIMessage))
            if turn < self.calls:
                msg = AIMessage(content="", tool_calls=[{"name": "noop", "args": {"x": turn}, "id": f"c{turn}"}])
            else:
                msg = AIMessage(content="done")
            return ChatResult(generations=[ChatGeneration(message=msg)])

    agent = create_agent(model=ScriptedChatModel(calls=calls), tools=[tool(noop)])
    agent.invoke({"messages": [{"role": "user", "content": "warm up"}]})
    started = time.process_time()
    for i in range(tasks):
        out = agent.invoke({"messages": [{"role": "user", "content": f"task {i}"}]})
        assert out["messages"][-1].content == "done"
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    steps = args.tasks * (args.calls + 1)
    tk_sync = run_toolkit(args.tasks, args.calls, noop) / steps * 1e6
    tk_async = run_toolkit(args.tasks, args.calls, noop_async) / steps * 1e6
    lg = run_langgraph(args.tasks, args.calls) / steps * 1e6
    print(f"workload: {args.tasks} tasks x ({args.calls} no-op calls + answer) = {steps} steps")
    print(f"toolkit (sync tool, thread) : {tk_sync:8.1f} us/step")
    print(f"toolkit (async tool)        : {tk_async:8.1f} us/step")
    print(f"langgraph create_agent      : {lg:8.1f} us/step")
    print(f"ratio toolkit/langgraph     : sync {tk_sync / lg:.3f}  async {tk_async / lg:.3f}  (target <= 0.050)")


if __name__ == "__main__":
    main()
