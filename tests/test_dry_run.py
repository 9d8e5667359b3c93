"""Dry runs: the calls an agent would make are recorded, none runs, and the run stops there."""

from __future__ import annotations

import json

from toolkit.models.scripted import ScriptedBackend
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.runtime.policy import make_approver

RAN: list[str] = []


def lookup(key: str) -> dict:
    """Look a key up.

    Args:
        key: the key
    """
    RAN.append(f"lookup {key}")
    return {"key": key, "size": len(key)}


def add(a: int, b: int) -> int:
    """Add two integers."""
    RAN.append(f"add {a} {b}")
    return a + b


def registry() -> ToolRegistry:
    reg = ToolRegistry()
    for fn in (lookup, add):
        reg.add_function(fn)
    return reg


def agent_for(script, **options) -> tuple[Agent, ScriptedBackend]:
    backend = ScriptedBackend(script)
    backend.record_requests = True
    return Agent(model=backend, tools=registry(), dry_run=True, **options), backend


def test_react_dry_run_records_the_first_turns_calls_and_runs_none():
    RAN.clear()
    agent, backend = agent_for(
        [
            {"tool_calls": [{"name": "lookup", "arguments": {"key": "a"}}, {"name": "add", "arguments": {"a": 1}}]},
            {"text": "never asked"},
        ]
    )
    result = agent.run("look a up and add")
    assert RAN == []
    assert result.status == "ok" and result.dry_run
    assert [(c.name, c.arguments) for c in result.calls] == [("lookup", {"key": "a"}), ("add", {"a": 1})]
    assert len(backend.requests) == 1  # the run stopped before asking the model again
    assert all(o.ok and "not executed" in o.text for o in result.observations)
    assert result.answer.startswith("Dry run: 2 call(s) recorded") and 'lookup({"key": "a"})' in result.answer
    kinds = [e.kind for e in result.trace]
    assert kinds.count("call") == 2 and kinds[-2:] == ["answer", "task_end"]


def test_an_answer_without_calls_is_the_dry_runs_answer():
    agent, backend = agent_for([{"text": "No tool fits; 4."}])
    result = agent.run("what is 2+2")
    assert result.status == "ok" and result.answer == "No tool fits; 4." and result.calls == []


def test_a_call_of_an_unknown_tool_is_refused_as_in_a_real_run():
    agent, _ = agent_for([{"tool_calls": [{"name": "nope", "arguments": {}}]}, {"text": "x"}])
    result = agent.run("task")
    assert [c.name for c in result.calls] == ["nope"]
    assert not result.observations[0].ok and result.observations[0].error.value == "unknown_tool"


def test_a_malformed_output_is_fixed_before_the_calls_are_recorded():
    agent, backend = agent_for(
        [
            {"text": "{bad", "parse_error": "not JSON"},
            {"tool_calls": [{"name": "lookup", "arguments": {"key": "b"}}]},
            {"text": "never asked"},
        ]
    )
    result = agent.run("look b up")
    assert [c.arguments for c in result.calls] == [{"key": "b"}]
    assert len(backend.requests) == 2


def test_side_effects_are_not_run_nor_asked_for_and_the_observation_says_so():
    RAN.clear()
    asked = []

    def wipe(path: str) -> str:
        """Delete a file."""
        RAN.append(path)
        return "gone"

    reg = registry()
    tool = reg.add_function(wipe)
    tool.manifest.actions[0].annotations.destructive = True
    backend = ScriptedBackend([{"tool_calls": [{"name": "wipe", "arguments": {"path": "/x"}}]}])

    async def approver(call, resolved):
        asked.append(call.name)
        return True

    result = Agent(model=backend, tools=reg, dry_run=True, approver=approver).run("wipe /x")
    assert RAN == [] and asked == []
    assert "would ask for approval" in result.observations[0].text
    denied = Agent(
        model=ScriptedBackend([{"tool_calls": [{"name": "wipe", "arguments": {"path": "/x"}}]}]),
        tools=reg,
        dry_run=True,
        approver=make_approver("deny"),
    ).run("wipe /x")
    assert RAN == [] and denied.calls[0].name == "wipe"


def test_dag_dry_run_records_the_whole_plan_with_its_references_as_written():
    RAN.clear()
    plan = {
        "steps": [
            {"id": 1, "action": "lookup", "arguments": {"key": "apples"}, "depends_on": []},
            {"id": 2, "action": "lookup", "arguments": {"key": "pears"}, "depends_on": []},
            {"id": 3, "action": "add", "arguments": {"a": "$1.size", "b": "$2.size"}, "depends_on": [1, 2]},
        ]
    }
    agent, backend = agent_for(
        [{"text": json.dumps(plan)}, {"text": json.dumps({"action": "answer", "content": "never asked"})}],
        planner="dag",
    )
    result = agent.run("apples plus pears")
    assert RAN == []
    assert [(c.name, c.arguments) for c in result.calls] == [
        ("lookup", {"key": "apples"}),
        ("lookup", {"key": "pears"}),
        ("add", {"a": "$1.size", "b": "$2.size"}),
    ]
    assert len(backend.requests) == 1  # the joiner was never asked
    assert result.steps[0].calls == result.calls
    assert any(e.kind == "plan" and e.plan and len(e.plan) == 3 for e in result.trace)


def test_without_dry_run_the_same_script_runs_the_tools():
    RAN.clear()
    backend = ScriptedBackend(
        [{"tool_calls": [{"name": "lookup", "arguments": {"key": "a"}}]}, {"text": "The size is 1."}]
    )
    result = Agent(model=backend, tools=registry(), approver="auto").run("size of a")
    assert RAN == ["lookup a"] and result.answer == "The size is 1." and not result.dry_run
