"""The CLI's foundation commands: tools validate/list/show/add and run with a scripted model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from toolkit.cli.main import app

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_builtin_manifests_validate():
    result = invoke("tools", "validate", str(REPO / "tool_manifests"))
    assert result.exit_code == 0, result.output


def _manifest(**over):
    data = yaml.safe_load((FIXTURES / "echo.yaml").read_text())
    data.update(over)
    return data


def test_validate_reports_each_bad_manifest_with_file_and_field(tmp_path):
    bad_type = _manifest(name="bad_type")
    bad_type["actions"][0]["input_schema"]["properties"]["text"]["type"] = "strin"
    no_name = _manifest()
    del no_name["name"]
    files = {
        "bad_type.yaml": bad_type,
        "no_name.yaml": no_name,
        "one.yaml": _manifest(name="same"),
        "two.yaml": _manifest(name="same"),
    }
    for name, data in files.items():
        (tmp_path / name).write_text(yaml.safe_dump(data))
    result = invoke("tools", "validate", str(tmp_path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert any(line.startswith(f"{tmp_path / 'bad_type.yaml'}: /actions/0/input_schema") for line in lines)
    assert f"{tmp_path / 'no_name.yaml'}: /name: Field required" in lines
    assert any(line.startswith(f"{tmp_path / 'two.yaml'}: /name:") and "one.yaml" in line for line in lines)
    # each on its own: still exit 2
    for name in ("bad_type.yaml", "no_name.yaml"):
        assert invoke("tools", "validate", str(tmp_path / name)).exit_code == 2


def test_list_json_has_every_builtin_manifest_and_its_availability():
    result = invoke("tools", "list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    names = {t["name"] for t in data["tools"]}
    shipped = {yaml.safe_load(p.read_text())["name"] for p in (REPO / "tool_manifests").glob("*.yaml")}
    assert shipped <= names
    for row in data["tools"]:
        assert isinstance(row["available"], bool)
        assert row["available"] or row["reason"]


def test_add_copies_a_valid_manifest_into_the_user_folder(isolated_home, tmp_path):
    src = tmp_path / "mine.yaml"
    src.write_text(yaml.safe_dump(_manifest(name="mine")))
    result = invoke("tools", "add", str(src))
    assert result.exit_code == 0, result.output
    assert (isolated_home / "tools" / "mine.yaml").is_file()
    listed = json.loads(invoke("tools", "list", "--json").stdout)
    assert any(t["name"] == "mine" and t["available"] for t in listed["tools"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\n")
    assert invoke("tools", "add", str(bad)).exit_code == 2


def test_run_with_a_scripted_model_uses_two_tools_and_prints_json(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(
        yaml.safe_dump(
            [
                {"tool_calls": [{"name": "echo.upper", "arguments": {"text": "shout"}}]},
                {"tool_calls": [{"name": "echo.echo", "arguments": {"text": "SHOUT"}}]},
                {"text": "They said SHOUT."},
            ]
        )
    )
    trace = tmp_path / "trace.jsonl"
    result = invoke(
        "run",
        "Shout it back",
        "--model",
        f"scripted:{script}",
        "--tools-path",
        str(FIXTURES / "echo.yaml"),
        "--json",
        "--trace",
        str(trace),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"] == "They said SHOUT." and data["status"] == "ok"
    assert [c["name"] for s in data["steps"] for c in s["calls"]] == ["echo.upper", "echo.echo"]
    assert data["steps"][0]["observations"][0]["content"] == "SHOUT"
    kinds = [e["kind"] for e in data["trace"]]
    assert kinds[0] == "task_start" and kinds[-1] == "task_end" and kinds.count("call") == 2
    assert len(trace.read_text().splitlines()) == len(kinds)


def test_tools_call_runs_one_action_through_the_executor():
    echo = ("--tools-path", str(FIXTURES / "echo.yaml"))
    result = invoke("tools", "call", "echo.upper", '{"text": "shout"}', *echo)
    assert result.exit_code == 0 and result.stdout.strip() == "SHOUT"
    as_json = json.loads(invoke("tools", "call", "echo.upper", '{"text": "a"}', "--json", *echo).stdout)
    assert as_json["ok"] and as_json["content"] == "A" and as_json["name"] == "echo.upper"
    wrong = invoke("tools", "call", "echo.upper", '{"txt": "a"}', *echo)
    assert wrong.exit_code == 1 and "invalid_arguments" in wrong.output
    timed_out = invoke("tools", "call", "echo.hang", '{"seconds": 5}', *echo)
    assert timed_out.exit_code == 1 and "timeout" in timed_out.output
    refused = invoke("tools", "call", "echo.wipe", '{"text": "all"}', "--approve", "deny", *echo)
    assert refused.exit_code == 1 and "denied" in refused.output
    assert invoke("tools", "call", "echo.upper", "{not json", *echo).exit_code == 2
    assert invoke("tools", "call", "echo.upper", "[1]", *echo).exit_code == 2


def test_run_reports_a_bad_model_string_clearly():
    result = invoke("run", "x", "--model", "nosuch:thing")
    assert result.exit_code == 2 and "unknown model string" in result.output
