"""DFSDT: recovering from a failing first branch, give-up, the depth limit, the budget, and the
trace of nodes and backtracks (scripted backend in `sequence` mode: one reply per model call)."""

from __future__ import annotations

from toolkit.models.scripted import ScriptedBackend, ScriptFile
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent


def flaky_search(query: str) -> str:
    """Search an index that is down."""
    raise ConnectionError("index unavailable")


def capital_of(country: str) -> str:
    """The capital city of a country."""
    return {"France": "Paris", "Japan": "Tokyo"}.get(country, "unknown")


def country_of(city: str) -> str:
    """The country a city is in."""
    return {"Lyon": "France"}.get(city, "unknown")


def registry() -> ToolRegistry:
    reg = ToolRegistry()
    for fn in (flaky_search, capital_of, country_of):
        reg.add_function(fn)
    return reg


def call(name, **arguments):
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def run(responses, max_steps=10, **options):
    backend = ScriptedBackend(ScriptFile.model_validate({"mode": "sequence", "default": responses}))
    backend.record_requests = True
    agent = Agent(
        model=backend, tools=registry(), planner="dfsdt", planner_options=options, max_steps=max_steps, approver="auto"
    )
    return agent.run("What is the capital of the country Lyon is in?"), backend


def test_recovers_from_a_failing_first_branch_and_solves_the_task_on_another():
    result, backend = run(
        [
            call("flaky_search", query="capital of Lyon's country"),  # node 0.0 fails -> backtrack to 0
            call("country_of", city="Lyon"),  # node 0.1
            call("capital_of", country="France"),  # node 0.1.0
            {"text": "Paris"},
        ]
    )
    assert result.status == "ok" and result.answer == "Paris"
    backtracks = [e for e in result.trace if e.kind == "backtrack"]
    assert len(backtracks) == 1 and backtracks[0].node == "0.0" and backtracks[0].parent == "0"
    assert "flaky_search failed" in backtracks[0].text
    calls = [(e.node, e.parent, e.call.name) for e in result.trace if e.kind == "call"]
    assert calls == [("0.0", "0", "flaky_search"), ("0.1", "0", "country_of"), ("0.1.0", "0.1", "capital_of")]
    # re-expanding the root lists the failed action and asks for a different one
    retry = backend.requests[1].messages[-1].content
    assert "flaky_search" in retry and "index unavailable" in retry and "different" in retry
    # the winning branch does not carry the failed attempt in its conversation
    assert not any("flaky_search" in m.content for m in backend.requests[2].messages if m.role != "system")
    expanded = [(e.node, e.parent) for e in result.trace if e.kind == "model_call"]
    assert expanded == [("0", None), ("0", None), ("0.1", "0"), ("0.1.0", "0.1")]


def test_give_up_abandons_the_branch_and_the_parent_tries_another_way():
    result, backend = run(
        [
            call("country_of", city="Lyon"),  # node 0.0 (ok)
            call("give_up", reason="this path is useless"),  # at 0.0: abandon it -> back to root
            call("capital_of", country="France"),  # node 0.1
            {"text": "Paris"},
        ]
    )
    assert result.answer == "Paris"
    backtrack = next(e for e in result.trace if e.kind == "backtrack")
    assert backtrack.node == "0.0" and "this path is useless" in backtrack.text
    retry = backend.requests[2].messages[-1].content
    assert "country_of" in retry and "dead end" in retry
    assert [t.name for t in backend.requests[0].tools][-1] == "give_up"


def test_the_depth_limit_forces_a_backtrack():
    result, _ = run(
        [
            call("country_of", city="Lyon"),  # 0.0 at depth 1
            call("capital_of", country="France"),  # would be depth 2 > max_depth 1
            call("capital_of", country="France"),  # root again: 0.1
            {"text": "Paris"},
        ],
        max_depth=1,
    )
    assert result.answer == "Paris"
    texts = [e.text for e in result.trace if e.kind == "backtrack"]
    assert any("exceed depth 1" in t for t in texts)
    assert [e.node for e in result.trace if e.kind == "call"] == ["0.0", "0.1"]


def test_every_branch_failing_ends_the_task_with_an_error():
    result, _ = run([call("flaky_search", query="x")], max_children=2)
    assert result.status == "error" and "every branch failed" in result.error
    assert sum(e.kind == "backtrack" for e in result.trace) == 3  # two failures, then the root is abandoned


def test_the_budget_of_model_calls_holds():
    result, backend = run([call("flaky_search", query="x")], max_children=50, max_model_calls=4)
    assert result.status == "max_steps" and len(backend.requests) == 4
    result, backend = run([call("flaky_search", query="x")], max_steps=3, max_children=50)
    assert result.status == "max_steps" and len(backend.requests) == 3
