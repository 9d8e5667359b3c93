"""ReAct vs DAG on a 4-branch fan-out (LLMCompiler's ParallelQA shape): four independent lookups
(each tool call sleeps 200 ms), then a combine step over their results (arithmetic, instant).

The model is the scripted backend standing in for a local model: every model call costs a
latency `--model-latency` (prefill, first token) plus its output length at `--decode-chars-per-s`.
The DAG plan streams at that rate, so its steps are dispatched while the plan is still decoding.
ReAct makes the same calls one per turn (5 calls, then the answer: 6 model calls); DAG makes
2 model calls (plan, join).

Critical path (computed, not measured): plan decoding + one lookup + combine + the joiner call,
i.e. what a perfect plan-and-execute run would take without streaming overlap or overhead.
Targets: dag <= 1.2x its critical path; react / dag >= 2.5.

    python benchmarks/parallel.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from toolkit.decorators import tool
from toolkit.models.scripted import ScriptedBackend
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent

TOOL_SLEEP_S = 0.2
CITIES = {"Tokyo": 37.4, "Delhi": 31.0, "Shanghai": 27.1, "Sao Paulo": 22.0}
TASK = "What is the combined population, in millions, of Tokyo, Delhi, Shanghai and Sao Paulo?"


async def population(city: str) -> dict:
    """Metro population of a city, in millions.

    Args:
        city: the city name
    """
    await asyncio.sleep(TOOL_SLEEP_S)  # a remote lookup
    return {"city": city, "millions": CITIES.get(city, 0.0)}


def total(values: list[float]) -> float:
    """Sum a list of numbers."""
    return round(sum(values), 3)


def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.add_function(tool(read_only=True)(population))  # lookups: nothing to approve
    reg.add_function(tool(read_only=True)(total))
    return reg


def answer_text() -> str:
    return f"The combined population is {round(sum(CITIES.values()), 3)} million."


def react_script(latency: float, rate: float) -> list[dict]:
    turns: list[dict] = []
    for city in CITIES:
        call = {"name": "population", "arguments": {"city": city}}
        turns.append({"tool_calls": [call], "delay_s": latency + len(json.dumps(call)) / rate})
    call = {"name": "total", "arguments": {"values": list(CITIES.values())}}
    turns.append({"tool_calls": [call], "delay_s": latency + len(json.dumps(call)) / rate})
    turns.append({"text": answer_text(), "delay_s": latency + len(answer_text()) / rate})
    return turns


def dag_script(latency: float, rate: float, chunk_chars: int = 20) -> tuple[list[dict], float]:
    steps = [
        {"id": i + 1, "action": "population", "arguments": {"city": c}, "depends_on": []} for i, c in enumerate(CITIES)
    ]
    refs = [f"${i + 1}.millions" for i in range(len(CITIES))]
    steps.append(
        {
            "id": len(CITIES) + 1,
            "action": "total",
            "arguments": {"values": refs},
            "depends_on": list(range(1, len(CITIES) + 1)),
        }
    )
    plan = json.dumps({"thought": "Look up the four cities in parallel, then add.", "steps": steps})
    join = json.dumps({"thought": "All four found.", "action": "answer", "content": answer_text()})
    script = [
        {"text": plan, "delay_s": latency, "chunk_chars": chunk_chars, "chunk_delay_s": chunk_chars / rate},
        {"text": join, "delay_s": latency + len(join) / rate},
    ]
    plan_s = latency + len(plan) / rate
    join_s = latency + len(join) / rate
    critical_path = plan_s + TOOL_SLEEP_S + 0.0 + join_s  # one lookup, then the (instant) combine
    return script, critical_path


async def timed(planner: str, script: list[dict], options: dict | None = None) -> tuple[float, object]:
    agent = Agent(
        model=ScriptedBackend(script), tools=registry(), planner=planner, planner_options=options, max_steps=10
    )
    started = time.perf_counter()
    result = await agent.arun(TASK)
    elapsed = time.perf_counter() - started
    await agent.aclose()
    if result.status != "ok" or result.answer != answer_text():
        raise SystemExit(f"{planner} failed: {result.status} {result.error} {result.answer!r}")
    return elapsed, result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-latency", type=float, default=0.1, help="seconds per model call before its first token"
    )
    parser.add_argument(
        "--decode-chars-per-s", type=float, default=4000.0, help="decoding speed, characters per second"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per planner; the median is reported")
    args = parser.parse_args()
    latency, rate = args.model_latency, args.decode_chars_per_s

    plan_script, critical_path = dag_script(latency, rate)
    dag_times, react_times, nostream_times = [], [], []
    for _ in range(args.repeat):
        dag_times.append((await timed("dag", plan_script))[0])
        nostream_times.append((await timed("dag", plan_script, {"stream": False}))[0])
        react_times.append((await timed("react", react_script(latency, rate), {"parallel_calls": False}))[0])
    dag_s, react_s, nostream_s = (sorted(t)[len(t) // 2] for t in (dag_times, react_times, nostream_times))
    print(
        f"setup: 4 lookups x {TOOL_SLEEP_S * 1000:.0f} ms + instant combine; model call = {latency * 1000:.0f} ms + output at {rate:.0f} chars/s; median of {args.repeat}"
    )
    print(
        f"dag (streamed plan):    {dag_s:.3f} s   critical path {critical_path:.3f} s   dag/critical path = {dag_s / critical_path:.2f} (target <= 1.2)"
    )
    print(f"dag (plan not streamed): {nostream_s:.3f} s")
    print(f"react (one call/turn):  {react_s:.3f} s")
    print(f"speedup react/dag = {react_s / dag_s:.2f}x (target >= 2.5x)")


if __name__ == "__main__":
    asyncio.run(main())
