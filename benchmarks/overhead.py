"""Engine overhead per step: toolkit vs LangGraph on the same scripted work.

Workload (the same for both): a scripted model calls a no-op tool 5 times, then answers; 300
tasks, run one after another. The model costs nothing, so what is measured is the engine: prompt
assembly, call validation, dispatch, traces. LangGraph's agent is `langchain.agents.create_agent`
with a scripted chat model, built once.

    python benchmarks/overhead.py [--tasks 300] [--calls 5] [--rounds 10]

Prints CPU microseconds per step (a step = one model turn) for each and the ratio: CPU time of
the whole process (all threads), so that a busy shared machine does not skew the ratio. The
engines take turns, a tenth of the tasks at a time, so that drift in the machine's speed falls on
both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any


def noop(x: int) -> str:
    """Do nothing and say so."""
    return "ok"


async def noop_async(x: int) -> str:
    """Do nothing and say so."""
    return "ok"


def toolkit_runner(calls: int, tool_fn) -> Callable[[int], float]:
    """A function running n tasks through one toolkit agent (built once) that returns their CPU time."""
    from toolkit import Agent, ToolRegistry
    from toolkit import tool as toolkit_tool
    from toolkit.models.scripted import ScriptedBackend

    script = [{"tool_calls": [{"name": tool_fn.__name__, "arguments": {"x": i}}]} for i in range(calls)] + [
        {"text": "done"}
    ]
    registry = ToolRegistry()
    registry.add_function(toolkit_tool(read_only=True)(tool_fn))  # read-only: no approval asked, as before
    agent = Agent(model=ScriptedBackend(script), tools=registry)
    loop = asyncio.new_event_loop()  # one loop for every chunk, as a long-running service has

    async def chunk(n: int) -> float:
        started = time.process_time()
        for i in range(n):
            result = await agent.arun(f"task {i}")
            assert result.answer == "done" and len(result.calls) == calls, result
        return time.process_time() - started

    loop.run_until_complete(agent.arun("warm up"))
    return lambda n: loop.run_until_complete(chunk(n))


def langgraph_runner(calls: int) -> Callable[[int], float]:
    """The same for LangGraph's `create_agent` with a scripted chat model."""
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

        def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
            return self

        def _generate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            turn = sum(1 for m in messages if isinstance(m, AIMessage))
            if turn < self.calls:
                msg = AIMessage(content="", tool_calls=[{"name": "noop", "args": {"x": turn}, "id": f"c{turn}"}])
            else:
                msg = AIMessage(content="done")
            return ChatResult(generations=[ChatGeneration(message=msg)])

    agent = create_agent(model=ScriptedChatModel(calls=calls), tools=[tool(noop)])

    def chunk(n: int) -> float:
        started = time.process_time()
        for i in range(n):
            out = agent.invoke({"messages": [{"role": "user", "content": f"task {i}"}]})
            assert out["messages"][-1].content == "done"
        return time.process_time() - started

    agent.invoke({"messages": [{"role": "user", "content": "warm up"}]})
    return chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10, help="chunks each engine's tasks are run in, alternating")
    args = parser.parse_args()
    steps = args.tasks * (args.calls + 1)
    runners = {
        "sync": toolkit_runner(args.calls, noop),
        "async": toolkit_runner(args.calls, noop_async),
        "langgraph": langgraph_runner(args.calls),
    }
    # interleaved in rounds: a shared VM's speed drifts by tens of percent within a minute, and
    # measuring one engine after the other would put that drift into the ratio
    cpu = dict.fromkeys(runners, 0.0)
    round_ratios: dict[str, list[float]] = {"sync": [], "async": []}
    per_round = args.tasks // args.rounds
    for r in range(args.rounds):
        n = per_round if r < args.rounds - 1 else args.tasks - per_round * (args.rounds - 1)
        spent = {}
        for name, run in runners.items():
            gc.collect()  # neither engine pays, untimed, for collecting the other's garbage
            spent[name] = run(n)
        for name in runners:
            cpu[name] += spent[name]
        for name in round_ratios:
            round_ratios[name].append(spent[name] / spent["langgraph"])
    tk_sync, tk_async, lg = (cpu[k] / steps * 1e6 for k in ("sync", "async", "langgraph"))
    print(
        f"workload: {args.tasks} tasks x ({args.calls} no-op calls + answer) = {steps} steps, in {args.rounds} interleaved rounds"
    )
    print(f"toolkit (sync tool, thread) : {tk_sync:8.1f} us/step")
    print(f"toolkit (async tool)        : {tk_async:8.1f} us/step")
    print(f"langgraph create_agent      : {lg:8.1f} us/step")
    print(f"ratio toolkit/langgraph     : sync {tk_sync / lg:.3f}  async {tk_async / lg:.3f}  (target <= 0.050)")
    print(
        f"median of round ratios      : sync {statistics.median(round_ratios['sync']):.3f}"
        f"  async {statistics.median(round_ratios['async']):.3f}  (bursts of load on a shared machine mostly miss it)"
    )


if __name__ == "__main__":
    main()
