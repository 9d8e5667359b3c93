"""Function definitions declared without an implementation: offered under their own names,
resolved through aliases, refused when run for real, and shown by `toolkit run --dry-run`."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.interop.functions import FunctionDefinitionError, declare_functions, read_functions
from toolkit.registry import ToolRegistry
from toolkit.runtime.build import build_agent
from toolkit.runtime.executor import Executor
from toolkit.types import ToolCall

DRINK = {
    "type": "function",
    "function": {
        "name": "ChaDri.change_drink",
        "description": "Change a drink order.",
        "parameters": {
            "type": "object",
            "properties": {"drink_id": {"type": "string"}, "size": {"type": "string", "enum": ["S", "M", "L"]}},
            "required": ["drink_id"],
        },
    },
}
CUBIC = {"name": "math.roots.cubic", "description": "Roots of a cubic.", "parameters": {"type": "object"}}


def test_declared_functions_keep_their_names_for_the_model_and_resolve_back():
    registry = ToolRegistry()
    declared = declare_functions(registry, [DRINK, CUBIC, {"name": "plain_one"}])
    assert [t.name for t in declared] == ["chadri_change_drink", "math_roots_cubic", "plain_one"]
    assert [s.name for s in registry.specs()] == ["ChaDri.change_drink", "math.roots.cubic", "plain_one"]
    assert registry.specs()[0].parameters["required"] == ["drink_id"]
    assert registry.specs()[2].description == "plain_one"  # no description: its name
    assert registry.resolve("ChaDri.change_drink").tool.name == "chadri_change_drink"
    assert [s.name for s in registry.specs(["math.roots.cubic"])] == ["math.roots.cubic"]


def test_running_a_declared_function_for_real_says_there_is_nothing_to_run():
    registry = ToolRegistry()
    declare_functions(registry, [DRINK])
    call = ToolCall(name="ChaDri.change_drink", arguments={"drink_id": "1"})
    obs = asyncio.run(Executor(registry, approver="auto").execute(call))
    assert not obs.ok and "declared without an implementation" in obs.text
    invalid = asyncio.run(
        Executor(registry, approver="auto").execute(call.model_copy(update={"arguments": {"size": "XL"}}))
    )
    assert invalid.error.value == "invalid_arguments"  # the declared schema is enforced


@pytest.mark.parametrize(
    "functions, message",
    [
        ([{"description": "no name"}], "expected an object with a name"),
        ([CUBIC, CUBIC], "defined twice"),
        ([{"name": "f", "parameters": {"type": "nonsense"}}], "not a valid JSON Schema"),
    ],
)
def test_bad_definitions_are_refused_whole_with_a_reason(functions, message):
    registry = ToolRegistry()
    with pytest.raises(FunctionDefinitionError, match=message):
        declare_functions(registry, functions)
    assert registry.tools == {}


def test_a_definition_may_not_take_the_name_of_a_registered_action():
    registry = ToolRegistry.default([])
    with pytest.raises(FunctionDefinitionError, match="math.calculate"):
        declare_functions(registry, [{"name": "math.calculate"}])


def test_files_hold_one_definition_a_list_or_a_tools_key(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps(CUBIC))
    (tmp_path / "many.yaml").write_text(yaml.safe_dump({"tools": [DRINK, CUBIC]}))
    (tmp_path / "bad.json").write_text("{nope")
    assert read_functions(tmp_path / "one.json") == [CUBIC]
    assert len(read_functions(tmp_path / "many.yaml")) == 2
    with pytest.raises(FunctionDefinitionError, match="no such file"):
        read_functions(tmp_path / "missing.json")
    with pytest.raises(FunctionDefinitionError, match="not valid JSON"):
        read_functions(tmp_path / "bad.json")


def test_build_agent_offers_the_declared_functions_alone_unless_tools_are_named():
    agent = build_agent("scripted:/dev/null", functions=[DRINK, CUBIC], dry_run=True)
    assert [s.name for s in agent.tool_specs("task")] == ["ChaDri.change_drink", "math.roots.cubic"]
    assert agent.dry_run and agent.executor.dry_run
    both = build_agent("scripted:/dev/null", functions=[CUBIC], tools=["math.calculate"])
    assert [s.name for s in both.tool_specs("task")] == ["math.calculate", "math.roots.cubic"]


def test_toolkit_run_dry_run_with_declared_functions(tmp_path):
    defs = tmp_path / "defs.json"
    defs.write_text(json.dumps([DRINK, CUBIC]))
    script = tmp_path / "model.yaml"
    script.write_text(
        yaml.safe_dump(
            [
                {"tool_calls": [{"name": "ChaDri.change_drink", "arguments": {"drink_id": "42", "size": "L"}}]},
                {"text": "never reached"},
            ]
        )
    )
    runner = CliRunner()
    args = ["run", "a large drink 42", "--functions", str(defs), "--model", f"scripted:{script}"]
    result = runner.invoke(app, [*args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and data["status"] == "ok"
    assert data["steps"][0]["calls"][0]["name"] == "ChaDri.change_drink"
    assert "never reached" not in result.stdout
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "add --dry-run" in refused.output
    missing = runner.invoke(app, ["run", "x", "--functions", str(tmp_path / "none.json"), "--dry-run"])
    assert missing.exit_code == 2 and "no such file" in missing.output and "Traceback" not in missing.output
