"""All three planners through the CLI (`toolkit run --planner ...`) and the API, on a built-in tool."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.cli.main import app

CALC = {"name": "math.calculate", "arguments": {"expression": "6*7"}}
PLAN = json.dumps(
    {
        "thought": "one step",
        "steps": [{"id": 1, "action": "math.calculate", "arguments": {"expression": "6*7"}, "depends_on": []}],
    }
)
JOIN = json.dumps({"thought": "done", "action": "answer", "content": "42"})
SCRIPTS = {
    "react": [{"tool_calls": [CALC]}, {"text": "42"}],
    "dfsdt": [{"tool_calls": [CALC]}, {"text": "42"}],
    "dag": [{"text": PLAN}, {"text": JOIN}],
}


@pytest.mark.parametrize("planner", ["react", "dag", "dfsdt"])
def test_each_planner_runs_from_the_cli(planner, tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(SCRIPTS[planner]))
    result = CliRunner().invoke(
        app,
        [
            "run",
            "What is 6 times 7?",
            "--planner",
            planner,
            "--model",
            f"scripted:{script}",
            "--tools",
            "math",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["planner"] == planner and data["answer"] == "42" and data["status"] == "ok"
    observations = [e["observation"] for e in data["trace"] if e["kind"] == "observation"]
    assert observations[0]["ok"] and "42" in observations[0]["text"]


@pytest.mark.parametrize("planner", ["react", "dag", "dfsdt"])
def test_each_planner_runs_from_the_api(planner):
    from toolkit.models.scripted import ScriptedBackend
    from toolkit.runtime.agent import Agent

    result = Agent(model=ScriptedBackend(SCRIPTS[planner]), tool_names=["math"], planner=planner).run(
        "What is 6 times 7?"
    )
    assert result.status == "ok" and result.answer == "42" and result.planner == planner


def test_planner_options_from_the_cli_and_clear_errors(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(SCRIPTS["dag"]))
    base = [
        "run",
        "What is 6 times 7?",
        "--planner",
        "dag",
        "--model",
        f"scripted:{script}",
        "--tools",
        "math",
        "--json",
    ]
    ok = CliRunner().invoke(app, [*base, "-o", "max_replans=0", "-o", "stream=false"], catch_exceptions=False)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["answer"] == "42"
    bad = CliRunner().invoke(app, [*base, "-o", "colour=blue"], catch_exceptions=False)
    assert bad.exit_code == 2 and "has no option(s) colour" in bad.output and "max_replans" in bad.output
