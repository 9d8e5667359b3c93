"""DAG planner: plan schema and validation, incremental parsing, references, parallel dispatch
(overlapping spans recorded by the tools), dispatch while the plan streams, plan errors as
observations, joiner answers and bounded replans."""

from __future__ import annotations

import asyncio
import json
import time

import jsonschema
import pytest

from toolkit.models.scripted import ScriptedBackend
from toolkit.planner.dag import DagPlanner, Plan, PlanStep, plan_json_schema, validate_plan
from toolkit.planner.dag.parse import PlanStreamParser
from toolkit.planner.dag.plan import ReferenceFailure, references, resolve
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.types import ToolSpec

SPANS: dict[str, tuple[float, float]] = {}


async def lookup(key: str) -> dict:
    """Look a key up in the slow store.

    Args:
        key: the key to look up
    """
    started = time.perf_counter()
    await asyncio.sleep(0.05)
    SPANS[key] = (started, time.perf_counter())
    return {"key": key, "size": len(key)}


def add(a: int, b: int) -> int:
    """Add two integers."""
    SPANS[f"add{a}+{b}"] = (time.perf_counter(), time.perf_counter())
    return a + b


def echo(text: str) -> str:
    """Echo a text."""
    return text


def registry() -> ToolRegistry:
    reg = ToolRegistry()
    for fn in (lookup, add, echo):
        reg.add_function(fn)
    return reg


def step(i, action, arguments, depends_on=()):
    return {"id": i, "action": action, "arguments": arguments, "depends_on": list(depends_on)}


def plan_text(*steps, thought="t"):
    return json.dumps({"thought": thought, "steps": list(steps)})


def answer(content, action="answer"):
    return {"text": json.dumps({"thought": "", "action": action, "content": content})}


def run(script, task="task", options=None, max_steps=10):
    SPANS.clear()
    backend = ScriptedBackend(script)
    backend.record_requests = True
    agent = Agent(
        model=backend, tools=registry(), planner="dag", planner_options=options, max_steps=max_steps, approver="auto"
    )
    return agent.run(task), backend


# ---- plan, schema, references ----------------------------------------------------------------


def test_references_and_resolution():
    args = {"a": "$1", "b": "$2.items.1", "c": "total ${1} and ${2.name}", "d": ["$3"], "e": "$$5 flat"}
    assert references(args) == {1, 2, 3}
    results = {1: 7, 2: {"items": [10, 20], "name": "x"}, 3: "three"}
    assert resolve(args, results) == {"a": 7, "b": 20, "c": "total 7 and x", "d": ["three"], "e": "$5 flat"}
    with pytest.raises(ReferenceFailure, match="no field 'missing'"):
        resolve("$2.missing", results)


def test_validate_plan_reports_every_kind_of_error():
    plan = Plan(
        steps=[
            PlanStep(id=1, action="lookup", arguments={"key": "x"}),
            PlanStep(id=2, action="nope", arguments={}),
            PlanStep(id=3, action="add", arguments={"a": "$9", "b": 1}),
            PlanStep(id=4, action="add", arguments={"a": "$5", "b": 1}),
            PlanStep(id=5, action="add", arguments={"a": "$4", "b": 1}),
            PlanStep(id=6, action="echo", arguments={"text": "$6"}),
            PlanStep(id=1, action="echo", arguments={"text": "dup"}),
        ]
    )
    messages = [str(e) for e in validate_plan(plan, {"lookup", "add", "echo"})]
    assert any("step 2: unknown tool 'nope'" in m for m in messages)
    assert any("step 3: unknown reference(s): $9" in m for m in messages)
    assert any(m.startswith("dependency cycle: 4 -> 5 -> 4") for m in messages)
    assert any("step 6: a step cannot depend on its own result" in m for m in messages)
    assert any("duplicate step id 1" in m for m in messages)


def test_plan_schema_accepts_a_plan_and_enumerates_the_tools():
    tools = [
        ToolSpec(
            name="lookup", parameters={"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}
        ),
        ToolSpec(
            name="add",
            parameters={"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
        ),
    ]
    good = {"steps": [step(1, "lookup", {"key": "k"}), step(2, "add", {"a": "$1.size", "b": 2}, [1])]}
    for typed in (True, False):
        schema = plan_json_schema(tools, typed_arguments=typed)
        jsonschema.validate(good, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"steps": [step(1, "other", {})]}, schema)
        with pytest.raises(jsonschema.ValidationError):  # ids are bounded, so a tiny model can't loop in one
            jsonschema.validate({"steps": [step(100, "lookup", {"key": "k"})]}, schema)
    assert plan_json_schema(tools, typed_arguments=False)["properties"]["steps"]["items"]["properties"]["action"][
        "enum"
    ] == ["lookup", "add"]
    with pytest.raises(jsonschema.ValidationError):  # typed: an integer argument can't be free text
        jsonschema.validate({"steps": [step(1, "add", {"a": "two", "b": 1})]}, plan_json_schema(tools))
    assert "thought" in plan_json_schema(tools, thought=True)["required"]


# ---- incremental parsing ---------------------------------------------------------------------


def test_the_parser_yields_each_step_as_soon_as_it_closes():
    text = plan_text(step(1, "echo", {"text": 'a } tricky " string ]'}), step(2, "add", {"a": 1, "b": 2}))
    parser = PlanStreamParser()
    seen_at = []
    for i, ch in enumerate(text):
        for raw in parser.feed(ch):
            seen_at.append((i, raw["id"]))
    first_end = text.index('}, {"id": 2')
    assert seen_at == [(first_end, 1), (len(text) - 3, 2)]
    thought, raws, error = parser.finish()
    assert thought == "t" and len(raws) == 2 and error is None


@pytest.mark.parametrize(
    "text, n, error",
    [
        ("```json\n[" + json.dumps(step(1, "echo", {"text": "x"})) + "]\n```", 1, None),
        (
            '{"thought": "x", "steps": [' + json.dumps(step(1, "echo", {"text": "x"})) + ', {"id": 2, "act',
            1,
            "incomplete",
        ),
        ("I cannot plan this", 0, "not valid JSON"),
        ('{"thought": "no steps"}', 0, '"steps" list'),
    ],
)
def test_the_parser_on_odd_texts(text, n, error):
    parser = PlanStreamParser()
    parser.feed(text)
    _, raws, err = parser.finish()
    assert len(raws) == n
    assert (err is None) if error is None else (error in err.message)


# ---- running plans ---------------------------------------------------------------------------


def test_a_fan_out_runs_in_parallel_and_references_are_resolved():
    plan = plan_text(
        step(1, "lookup", {"key": "aa"}),
        step(2, "lookup", {"key": "bbb"}),
        step(3, "lookup", {"key": "c"}),
        step(4, "add", {"a": "$1.size", "b": "$2.size"}, [1, 2]),
        step(5, "echo", {"text": "c has ${3.size}, sum ${4}"}, [3, 4]),
    )
    result, backend = run([{"text": plan}, answer("the sum is 5")])
    assert result.status == "ok" and result.answer == "the sum is 5"
    starts = [SPANS[k][0] for k in ("aa", "bbb", "c")]
    ends = [SPANS[k][1] for k in ("aa", "bbb", "c")]
    assert max(starts) < min(ends)  # the three lookups overlapped
    assert SPANS["add2+3"][0] >= max(SPANS["aa"][1], SPANS["bbb"][1])  # add waited for its inputs
    by_name = {o.name: o for o in result.observations}
    assert by_name["add"].content == 5 and by_name["echo"].text == "c has 1, sum 5"
    calls = [e for e in result.trace if e.kind == "call"]
    assert sorted(e.node for e in calls) == ["1", "2", "3", "4", "5"]
    plan_event = next(e for e in result.trace if e.kind == "plan")
    assert [s["id"] for s in plan_event.plan] == [1, 2, 3, 4, 5] and all(s["status"] == "done" for s in plan_event.plan)
    # the plan was asked for under a JSON schema whose actions are the offered tools
    first = backend.requests[0]
    assert first.constraint.kind == "json_schema"
    branches = first.constraint.json_schema["properties"]["steps"]["items"]["anyOf"]
    assert sorted(b["properties"]["action"]["const"] for b in branches) == ["add", "echo", "lookup"]
    # the joiner saw the results
    assert "Step 4: add" in backend.requests[1].messages[-1].content


def test_steps_are_dispatched_while_the_plan_is_still_streaming():
    plan = plan_text(step(1, "lookup", {"key": "first"}), *[step(i, "echo", {"text": "x" * 40}) for i in range(2, 6)])
    result, _ = run([{"text": plan, "chunk_chars": 8, "chunk_delay_s": 0.005}, answer("ok")])
    first_call = next(e for e in result.trace if e.kind == "call" and e.node == "1")
    plan_done = next(e for e in result.trace if e.kind == "model_call")
    assert first_call.t < plan_done.t  # step 1 started before the model finished the plan
    assert SPANS["first"][0] < SPANS["first"][1]


def test_without_streaming_the_plan_runs_after_it_is_complete():
    plan = plan_text(step(1, "lookup", {"key": "k"}))
    result, _ = run([{"text": plan}, answer("ok")], options={"stream": False})
    kinds = [e.kind for e in result.trace]
    assert kinds.index("model_call") < kinds.index("call")
    assert result.answer == "ok"


def test_plan_errors_become_observations_and_the_task_goes_on():
    plan = plan_text(
        step(1, "lookup", {"key": "ok"}),
        step(2, "teleport", {"to": "mars"}),
        step(3, "echo", {"text": "$2"}, [2]),
        step(4, "add", {"a": "$9", "b": 1}),
        step(5, "add", {"a": "$6", "b": 1}),
        step(6, "add", {"a": "$5", "b": 1}),
        step(7, "echo", {"text": "${1.missing}"}, [1]),
        {"id": "eight", "action": "echo"},
    )
    result, backend = run([{"text": plan}, answer("partial answer")])
    assert result.status == "ok" and result.answer == "partial answer"
    texts = {o.name + ":" + (o.message or "") for o in result.observations if not o.ok}
    joined = "\n".join(texts)
    assert "unknown tool 'teleport'" in joined
    assert "not run: step(s) 2 failed" in joined
    assert "unknown reference(s): $9" in joined
    assert "dependency cycle: 5 -> 6 -> 5" in joined
    assert "has no field 'missing'" in joined
    assert "malformed" in joined
    assert result.observations[0].ok  # the valid step still ran
    join_prompt = backend.requests[1].messages[-1].content
    assert "Plan errors:" in join_prompt and "teleport" in join_prompt


def test_an_unparseable_plan_is_shown_to_the_model_which_replans():
    good = plan_text(step(1, "add", {"a": 2, "b": 2}))
    script = [{"text": "Sure! Here is my plan: add 2 and 2"}, answer("bad plan", "replan"), {"text": good}, answer("4")]
    result, backend = run(script)
    assert result.status == "ok" and result.answer == "4"
    assert [e.kind for e in result.trace].count("replan") == 1
    assert "not valid JSON" in backend.requests[1].messages[-1].content
    assert "Make a new plan for what is still missing: bad plan" in backend.requests[2].messages[-1].content
    assert len(result.steps) == 2 and result.steps[1].observations[0].content == 4


def test_replans_are_bounded():
    script = [{"text": plan_text(step(1, "add", {"a": 1, "b": 1}))}, answer("more", "replan")]
    result, backend = run(script, options={"max_replans": 2})
    # the joiner kept asking to replan; after 2 replans its schema no longer offers it
    assert result.status == "ok" and result.answer == "more"
    assert [e.kind for e in result.trace].count("replan") == 2
    last_join = backend.requests[-1]
    assert last_join.constraint.json_schema["properties"]["action"]["enum"] == ["answer"]


def test_native_tool_calls_become_independent_steps():
    script = [
        {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "echo", "arguments": {"text": "hi"}}]},
        {"text": "3 and hi"},
    ]
    result, _ = run(script)
    assert result.answer == "3 and hi"  # a plain-text joiner reply is the answer
    assert sorted(o.text for o in result.observations) == ["3", "hi"]


def test_planner_choice_by_name_and_instance():
    for planner in ("dag", DagPlanner(max_replans=0)):
        agent = Agent(
            model=ScriptedBackend([{"text": plan_text()}, answer("nothing to do")]), tools=registry(), planner=planner
        )
        assert agent.run("x").answer == "nothing to do"


def test_a_looping_plan_is_cut_off_at_the_first_repeated_step():
    looping = plan_text(
        step(1, "lookup", {"key": "a"}),
        step(2, "lookup", {"key": "a"}),  # the same call again: a small model's loop
        step(3, "lookup", {"key": "never"}),
    )
    result, backend = run([{"text": looping, "chunk_chars": 10}, answer("a")])
    assert result.answer == "a"
    assert "never" not in SPANS and list(SPANS) == ["a"]
    assert any(e.kind == "plan" and "stopped the plan" in (e.text or "") for e in result.trace)
    # the plan kept in the conversation is valid JSON of the accepted steps
    plan_message = backend.requests[1].messages[2]
    assert [s["id"] for s in json.loads(plan_message.content)["steps"]] == [1]


def test_a_decision_cut_off_by_the_token_limit_keeps_its_content():
    truncated = {"text": '{"action": "answer", "content": "The answer is 42.00000000'}
    result, _ = run([{"text": plan_text(step(1, "add", {"a": 40, "b": 2}))}, truncated])
    assert result.answer == "The answer is 42.00000000"


def test_a_step_that_never_closes_is_cut_off_and_the_rest_of_the_plan_runs():
    runaway = (
        '{"steps": ['
        + json.dumps(step(1, "lookup", {"key": "a"}))
        + ', {"id": 2, "action": "echo", "arguments": {"text": "'
        + "la " * 400
    )
    result, backend = run([{"text": runaway, "chunk_chars": 50}, answer("a")], options={"max_step_chars": 300})
    assert result.answer == "a" and list(SPANS) == ["a"]
    assert any(e.kind == "plan" and "ran past 300 characters" in (e.text or "") for e in result.trace)
    assert json.loads(backend.requests[1].messages[2].content) == {"steps": [step(1, "lookup", {"key": "a"})]}
    assert "Plan errors:" in backend.requests[1].messages[-1].content
