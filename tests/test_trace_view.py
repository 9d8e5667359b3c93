"""Trace views: the model computed from events, `toolkit trace show` (a tree), `toolkit trace html`
(one self-contained page), checked in headless Chromium through Playwright."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.models.scripted import ScriptedBackend
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.runtime.trace import read_trace, write_trace
from toolkit.trace_view import build_view, render_html, render_tree
from toolkit.trace_view.model import assign_lanes

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


async def fetch_weather(city: str) -> dict:
    """The weather of a city (sleeps, standing in for a slow service)."""
    await asyncio.sleep(0.3)
    return {"city": city, "temp_c": 21 if city == "Paris" else 17, "note": HOSTILE}


def compare(a: float, b: float) -> str:
    """Compare two temperatures."""
    return "the first is warmer" if a > b else "the second is warmer"


def parallel_run():
    """A ReAct run whose first step makes a parallel batch of two slow calls."""
    registry = ToolRegistry()
    registry.add_function(fetch_weather)
    registry.add_function(compare)
    backend = ScriptedBackend(
        [
            {
                "tool_calls": [
                    {"name": "fetch_weather", "arguments": {"city": "Paris"}},
                    {"name": "fetch_weather", "arguments": {"city": "Berlin"}},
                ]
            },
            {"tool_calls": [{"name": "compare", "arguments": {"a": 21, "b": 17}}]},
            {"text": "Paris is warmer: 21 °C against 17 °C."},
        ]
    )
    return Agent(model=backend, tools=registry, approver="auto").run("Is Paris warmer than Berlin?")


def dag_run():
    """A DAG run (the real planner): two independent slow lookups, then a step using both."""
    registry = ToolRegistry()
    registry.add_function(fetch_weather)
    registry.add_function(compare)
    plan = {
        "thought": "Both cities at once, then compare.",
        "steps": [
            {"id": 1, "action": "fetch_weather", "arguments": {"city": "Paris"}, "depends_on": []},
            {"id": 2, "action": "fetch_weather", "arguments": {"city": "Berlin"}, "depends_on": []},
            {"id": 3, "action": "compare", "arguments": {"a": "$1.temp_c", "b": "$2.temp_c"}, "depends_on": [1, 2]},
        ],
    }
    backend = ScriptedBackend(
        [
            {"text": json.dumps(plan)},
            {
                "text": json.dumps(
                    {"thought": "", "action": "answer", "content": "Paris is warmer: 21 °C against 17 °C."}
                )
            },
        ]
    )
    return Agent(model=backend, tools=registry, planner="dag", approver="auto").run("Is Paris warmer than Berlin?")


@pytest.fixture(scope="module")
def dag_trace(tmp_path_factory):
    pytest.importorskip("toolkit.planner.dag")
    result = dag_run()
    assert result.status == "ok", result.error
    path = tmp_path_factory.mktemp("dag") / "dag.jsonl"
    write_trace(result, path)
    return result, path


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    result = parallel_run()
    assert result.status == "ok", result.error
    folder = tmp_path_factory.mktemp("traces")
    jsonl, as_json = folder / "run.jsonl", folder / "run.json"
    write_trace(result, jsonl)
    as_json.write_text(result.model_dump_json())
    return result, jsonl, as_json


def test_view_puts_parallel_calls_in_lanes_and_turns_in_a_chain(run_files):
    result, jsonl, _ = run_files
    ((task_id, events),) = read_trace(jsonl).items()
    view = build_view(task_id, events)
    assert view.task == "Is Paris warmer than Berlin?" and view.status == "ok"
    assert view.answer == result.answer and view.usage == result.usage
    paris, berlin, comp = view.calls
    assert {paris.lane, berlin.lane} == {0, 1} and comp.lane == 0
    assert paris.start < berlin.end and berlin.start < paris.end  # they overlapped in time
    assert comp.start >= max(paris.end, berlin.end) - 1e-3
    nodes = {n.call_ids[0]: n for n in view.plan}
    assert nodes[paris.id].depth == nodes[berlin.id].depth == 0
    assert nodes[comp.id].depth == 1 and set(nodes[comp.id].deps) == {nodes[paris.id].id, nodes[berlin.id].id}
    assert len(view.model_calls) == 3 and all(m.usage.total_tokens for m in view.model_calls)


def test_lanes_never_hold_overlapping_intervals():
    class Span:
        def __init__(self, start, end):
            self.start, self.end, self.lane = start, end, -1

    spans = [Span(0, 5), Span(1, 2), Span(1.5, 3), Span(2, 4), Span(5, 6), Span(3, 3.5)]
    assign_lanes(spans)
    for a in spans:
        for b in spans:
            if a is not b and a.lane == b.lane:
                assert a.end <= b.start + 1e-6 or b.end <= a.start + 1e-6
    assert len({s.lane for s in spans}) == 3  # as many lanes as the most calls at once


def test_dag_plan_events_make_a_graph_by_depth():
    from toolkit.types import Observation, ToolCall, TraceEvent

    plan = [
        {"id": "1", "tool": "search", "arguments": {"q": "a"}},
        {"id": "2", "tool": "search", "arguments": {"q": "b"}},
        {"id": "3", "tool": "math.calculate", "arguments": {"expression": "$1 + $2"}, "depends_on": ["1", "2"]},
    ]
    events = [TraceEvent(kind="task_start", t=0, text="dag"), TraceEvent(kind="plan", t=0.1, plan=plan)]
    for i, (sid, start) in enumerate((("1", 0.2), ("2", 0.2), ("3", 0.6))):
        call = ToolCall(id=f"c{sid}", name=plan[i]["tool"], arguments=plan[i]["arguments"])
        events.append(TraceEvent(kind="call", t=start, call=call, node=sid))
        events.append(
            TraceEvent(
                kind="observation",
                t=start + 0.3,
                node=sid,
                observation=Observation(call_id=call.id, name=call.name, ok=sid != "2", text="x", duration_s=0.3),
            )
        )
    view = build_view("t", events)
    assert view.plan_from_events
    by_id = {n.id: n for n in view.plan}
    assert (by_id["r1:1"].depth, by_id["r1:2"].depth, by_id["r1:3"].depth) == (0, 0, 1)
    assert by_id["r1:3"].deps == ["r1:1", "r1:2"] and by_id["r1:3"].call_ids == ["c3"]
    html = render_html({"t": events})
    assert 'class="node error"' in html and 'data-from="r1:1" data-to="r1:3"' in html


def test_tree_shows_steps_calls_observations_and_tokens(run_files):
    result, jsonl, _ = run_files
    ((task_id, events),) = read_trace(jsonl).items()
    console = Console(record=True, width=200)
    console.print(render_tree(build_view(task_id, events)))
    text = console.export_text()
    assert "Is Paris warmer than Berlin?" in text and "step 0" in text and "step 1" in text
    assert text.count("fetch_weather(") == 2 and "compare(" in text and '"temp_c": 21' in text
    assert f"{result.usage.prompt_tokens} prompt + {result.usage.completion_tokens} completion tokens" in text
    assert "answer Paris is warmer" in text


def test_cli_show_and_html(run_files, tmp_path):
    _, jsonl, as_json = run_files
    runner = CliRunner()
    shown = runner.invoke(app, ["trace", "show", str(jsonl)])
    assert shown.exit_code == 0, shown.output
    assert "fetch_weather" in shown.output and "step 0" in shown.output
    out = tmp_path / "page.html"
    made = runner.invoke(app, ["trace", "html", str(as_json), "-o", str(out)])
    assert made.exit_code == 0, made.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # self-contained: no external assets
    assert "<script>window.__pwned" not in page and "&lt;script&gt;window.__pwned" in page
    missing = runner.invoke(app, ["trace", "show", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    (tmp_path / "bad.jsonl").write_text("not json\n")
    bad = runner.invoke(app, ["trace", "show", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 2 and "not a trace" in bad.output
    wrong_task = runner.invoke(app, ["trace", "show", str(jsonl), "--task", "nope"])
    assert wrong_task.exit_code == 2 and "no task 'nope'" in wrong_task.output


def test_tree_search_trace_draws_the_search_tree():
    pytest.importorskip("toolkit.planner.dfsdt")
    from toolkit.models.scripted import ScriptFile

    def flaky_lookup(city: str) -> str:
        """A lookup service that is down."""
        raise ConnectionError("service down")

    registry = ToolRegistry()
    registry.add_function(flaky_lookup)
    registry.add_function(fetch_weather)
    registry.add_function(compare)
    script = {
        "mode": "sequence",
        "default": [
            {"tool_calls": [{"name": "flaky_lookup", "arguments": {"city": "Paris"}}]},  # node 0.0 fails: backtrack
            {"tool_calls": [{"name": "fetch_weather", "arguments": {"city": "Paris"}}]},  # node 0.1
            {"tool_calls": [{"name": "compare", "arguments": {"a": 21, "b": 17}}]},  # node 0.1.0
            {"text": "Paris is warmer."},
        ],
    }
    result = Agent(
        model=ScriptedBackend(ScriptFile.model_validate(script)), tools=registry, planner="dfsdt", approver="auto"
    ).run("Is Paris warm?")
    assert result.status == "ok", result.error
    view = build_view(result.task_id, result.trace)
    assert view.plan_kind == "search tree" and not view.plan_from_events
    by_id = {n.id: n for n in view.plan}
    assert set(by_id) == {"n:0.0", "n:0.1", "n:0.1.0"}
    assert by_id["n:0.1.0"].deps == ["n:0.1"] and by_id["n:0.0"].deps == [] and by_id["n:0.1.0"].depth == 1
    assert any(kind == "backtrack" for _, kind, _ in view.notes)
    html = render_html({result.task_id: result.trace})
    assert "<h3>Search tree</h3>" in html and 'class="node error" data-node="n:0.0"' in html


# ---- in Chromium (keep last: sync Playwright holds the thread's event loop while the page is open) ----


@pytest.fixture(scope="module")
def chromium_page(chromium):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


def overlap_on_time_axis(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]


def test_dag_trace_links_calls_to_plan_steps(dag_trace):
    result, path = dag_trace
    ((task_id, events),) = read_trace(path).items()
    view = build_view(task_id, events)
    assert view.plan_from_events
    by_id = {n.id: n for n in view.plan}
    assert (by_id["r1:1"].depth, by_id["r1:2"].depth, by_id["r1:3"].depth) == (0, 0, 1)
    assert set(by_id["r1:3"].deps) == {"r1:1", "r1:2"}
    assert all(len(n.call_ids) == 1 for n in view.plan)  # each step ran once, its call found
    first, second = (next(c for c in view.calls if c.node == sid) for sid in ("1", "2"))
    assert first.lane != second.lane


def test_html_of_a_dag_run_in_chromium_shows_parallel_steps_side_by_side(dag_trace, chromium_page, tmp_path):
    result, path = dag_trace
    out = tmp_path / "dag.html"
    out.write_text(render_html(read_trace(path)))
    page = chromium_page
    page.goto(out.as_uri())
    assert page.locator("h3", has_text="Plan").count() == 1
    assert page.locator("svg.plan-graph g.node").count() == 3
    assert page.locator("svg.plan-graph path.edge").count() == 2
    assert page.locator(".timeline .bar.call").count() == 3
    assert page.locator("details.call").count() == 3
    assert page.evaluate("window.__pwned") is None  # tool output shown as text, never run

    # the two independent steps: side by side, i.e. the same span of the time axis in different lanes
    bars = {sid: page.locator(f'.bar.call[data-node="{sid}"]') for sid in ("1", "2", "3")}
    box = {sid: bar.bounding_box() for sid, bar in bars.items()}
    assert overlap_on_time_axis(box["1"], box["2"])
    assert bars["1"].get_attribute("data-lane") != bars["2"].get_attribute("data-lane")
    assert abs(box["1"]["y"] - box["2"]["y"]) >= box["1"]["height"]
    assert box["3"]["x"] >= max(box["1"]["x"] + box["1"]["width"], box["2"]["x"] + box["2"]["width"]) - 2  # after both
    # in the plan graph, both are at depth 0 and the dependent step one column right
    nodes = {n.get_attribute("data-node"): n.bounding_box() for n in page.locator("svg.plan-graph g.node").all()}
    assert nodes["r1:1"]["x"] == nodes["r1:2"]["x"] < nodes["r1:3"]["x"]
    shot = tmp_path / "dag.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_html_in_chromium_react_batch_and_expandable_calls(run_files, chromium_page, tmp_path):
    result, jsonl, _ = run_files
    out = tmp_path / "trace.html"
    out.write_text(render_html(read_trace(jsonl)))
    page = chromium_page
    page.goto(out.as_uri())
    assert page.title() == "toolkit trace"
    assert page.locator("svg.plan-graph g.node").count() == 3
    assert page.locator(".timeline .bar.model").count() == 3
    assert page.locator("table.tokens tr.total").inner_text().split()[-3:] == [
        str(result.usage.prompt_tokens),
        str(result.usage.completion_tokens),
        "0",
    ]
    assert page.evaluate("window.__pwned") is None
    paris, berlin = result.steps[0].calls
    box_a = page.locator(f"#bar-{paris.id}").bounding_box()
    box_b = page.locator(f"#bar-{berlin.id}").bounding_box()
    assert overlap_on_time_axis(box_a, box_b) and abs(box_a["y"] - box_b["y"]) >= box_a["height"]

    # clicking a bar opens that call's arguments and observation
    details = page.locator(f"#call-{berlin.id}")
    assert details.get_attribute("open") is None
    page.locator(f"#bar-{berlin.id}").click()
    assert details.get_attribute("open") is not None
    assert json.loads(details.locator("pre.arguments").inner_text()) == {"city": "Berlin"}
    assert '"temp_c": 17' in details.locator("pre.observation").inner_text()
    page.screenshot(path=str(tmp_path / "react.png"), full_page=True)
