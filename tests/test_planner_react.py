"""ReAct: parallel batches, malformed outputs as fixable observations, the step budget, the trace,
and the tool-choice aids (retrieval, few-shot examples, log-likelihood ranking)."""

from __future__ import annotations

import asyncio
import time

from toolkit.models.base import Capabilities
from toolkit.models.scripted import ScriptedBackend
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.types import LLMRequest

SPANS: list[tuple[str, float, float]] = []


async def lookup(key: str) -> str:
    """Look a key up in the slow store.

    Args:
        key: the key to look up
    """
    started = time.perf_counter()
    await asyncio.sleep(0.05)
    SPANS.append((key, started, time.perf_counter()))
    return f"value of {key}"


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.add_function(lookup)
    reg.add_function(add)
    return reg


def run(script, task="do it", **agent_options):
    backend = ScriptedBackend(script)
    backend.record_requests = True
    agent = Agent(model=backend, tools=registry(), approver="auto", **agent_options)
    return agent.run(task), backend


def test_a_parallel_batch_runs_concurrently_and_is_traced():
    SPANS.clear()
    calls = [{"name": "lookup", "arguments": {"key": k}} for k in "abc"]
    result, _ = run([{"tool_calls": calls}, {"text": "a, b and c"}])
    assert result.status == "ok" and result.answer == "a, b and c"
    assert [o.text for o in result.observations] == ["value of a", "value of b", "value of c"]
    # all three started before any finished: one batch, run concurrently
    assert max(s for _, s, _ in SPANS) < min(e for _, _, e in SPANS)
    plans = [e for e in result.trace if e.kind == "plan"]
    assert [len(p.plan) for p in plans] == [3, 0]
    assert "in parallel" in plans[0].text and plans[1].text == "react: final answer"


def test_serial_mode_runs_one_call_per_turn():
    calls = [{"name": "lookup", "arguments": {"key": k}} for k in "ab"]
    result, _ = (
        Agent(
            model=ScriptedBackend([{"tool_calls": calls}, {"text": "done"}]),
            tools=registry(),
            planner_options={"parallel_calls": False},
        ).run("x"),
        None,
    )
    assert [c.arguments["key"] for c in result.calls] == ["a"]


def test_a_malformed_output_becomes_an_observation_the_model_fixes():
    script = [
        {"text": '{"name": "add", "argu', "parse_error": "unterminated JSON"},
        {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
        {"text": "5"},
    ]
    result, backend = run(script)
    assert result.status == "ok" and result.answer == "5"
    first = result.steps[0].observations[0]
    assert not first.ok and first.error == "parse_error" and "unterminated JSON" in first.text
    # the second request shows the model its error
    assert "could not be parsed: unterminated JSON" in backend.requests[1].messages[-1].content
    assert result.observations[-1].text == "5"


def test_invalid_arguments_come_back_as_an_observation():
    script = [
        {"tool_calls": [{"name": "add", "arguments": {"a": "two"}}]},
        {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}]},
        {"text": "2"},
    ]
    result, _ = run(script)
    assert result.answer == "2"
    assert result.observations[0].error == "invalid_arguments"


def test_the_last_step_asks_for_the_answer_and_the_budget_holds():
    endless = [{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}]}]
    result, backend = run(endless, max_steps=3)
    assert result.status == "max_steps" and len(result.steps) == 3
    last = backend.requests[-1]
    assert last.tool_choice == "none" and "last step" in last.messages[-1].content


def test_calls_over_the_per_turn_limit_are_dropped_with_a_note():
    calls = [{"name": "lookup", "arguments": {"key": str(i)}} for i in range(5)]
    result, backend = run([{"tool_calls": calls}, {"text": "ok"}], planner_options={"max_calls_per_turn": 2})
    assert len(result.steps[0].calls) == 2
    assert "3 more were dropped" in backend.requests[1].messages[-1].content


def test_few_shot_examples_and_top_k_tools_reach_the_prompt():
    from toolkit.decorators import tool

    @tool(examples=[{"task": "what is 40 plus 2", "arguments": {"a": 40, "b": 2}}])
    def plus(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    reg = registry()
    reg.add_function(plus)
    backend = ScriptedBackend([{"text": "42"}])
    backend.record_requests = True
    agent = Agent(model=backend, tools=reg, approver="auto", planner_options={"few_shot": True, "tool_k": 1})
    assert agent.run("what is 1 plus 1").answer == "42"
    request = backend.requests[0]
    assert [t.name for t in request.tools] == ["plus"]
    assert (
        'Task: what is 40 plus 2\nCall: {"name": "plus", "arguments": {"a": 40, "b": 2}}' in request.messages[0].content
    )


class KeywordScoringBackend(ScriptedBackend):
    """Stand-in for a model's log-likelihood (the llama.cpp backend's `score`): scores a candidate
    by whether the task mentions it. It tests the planner's use of `score`, not a model."""

    capabilities = Capabilities(native_tools=True, scoring=True)

    async def score(self, request: LLMRequest, candidates: list[str]) -> list[float]:
        names = [c.removeprefix('{"name": "').rstrip('"') for c in candidates]
        self.scored = names
        task = request.messages[1].content
        return [0.0 if n in task else -5.0 for n in names]


def test_rank_actions_forces_the_likeliest_tool():
    backend = KeywordScoringBackend([{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}, {"text": "3"}])
    backend.record_requests = True
    agent = Agent(model=backend, tools=registry(), approver="auto", planner_options={"rank_actions": True})
    result = agent.run("use add on 1 and 2")
    assert result.answer == "3"
    assert backend.scored == ["lookup", "add", "final_answer"]
    first = backend.requests[0]
    assert first.tool_choice == "add" and [t.name for t in first.tools] == ["add"]
    ranking = next(e for e in result.trace if e.kind == "plan")
    assert ranking.plan[0] == {"action": "add", "score": 0.0} and "chose add" in ranking.text


def test_tools_can_be_retrieved_again_at_every_step():
    def weather(city: str) -> str:
        """Weather forecast for a city."""
        return "rain in Paris; the umbrella shop is open"

    def umbrella_shop(city: str) -> str:
        """Find an umbrella shop in a city."""
        return "Rue de Rivoli"

    reg = registry()
    reg.add_function(weather)
    reg.add_function(umbrella_shop)
    script = [{"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]}, {"text": "buy one"}]
    backend = ScriptedBackend(script)
    backend.record_requests = True
    agent = Agent(model=backend, tools=reg, approver="auto", planner_options={"tool_k": 1, "retrieve_per_step": True})
    assert agent.run("what is the weather forecast in Paris").answer == "buy one"
    assert [t.name for t in backend.requests[0].tools] == ["weather"]
    assert [t.name for t in backend.requests[1].tools] == ["umbrella_shop"]  # the observation's words
