"""Manifest loading and validation: errors name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from toolkit.manifest import SCHEMA_PATH, ManifestError, json_schema, load_manifest, parse_manifest

GOOD = {
    "name": "echo",
    "description": "Echo text back.",
    "binding": {"type": "python", "module": "tests.fixtures.echo_tools"},
    "actions": [
        {
            "name": "echo",
            "description": "Return the text.",
            "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        }
    ],
}


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


def test_yaml_and_json_load_the_same_manifest(tmp_path):
    a = load_manifest(write(tmp_path, "a.yaml", GOOD))
    b = load_manifest(write(tmp_path, "b.json", GOOD))
    assert a == b
    assert a.actions[0].timeout_s == 30.0


def test_wrong_type_inside_input_schema_names_the_field(tmp_path):
    bad = json.loads(json.dumps(GOOD))
    bad["actions"][0]["input_schema"]["properties"]["text"]["type"] = "strin"
    path = write(tmp_path, "bad.yaml", bad)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    (line,) = info.value.lines()
    assert line.startswith(f"{path}: /actions/0/input_schema")
    assert "properties/text/type" in line


def test_missing_name_is_reported_at_name(tmp_path):
    bad = {k: v for k, v in GOOD.items() if k != "name"}
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, "noname.yaml", bad))
    assert info.value.errors == [("/name", "Field required")]


def test_binding_errors_drop_the_discriminator_tag():
    bad = {**GOOD, "binding": {"type": "python"}}
    with pytest.raises(ManifestError) as info:
        parse_manifest(bad, "x.yaml")
    assert ("/binding/module", "Field required") in info.value.errors


def test_unknown_field_and_bad_yaml_are_clean_errors(tmp_path):
    with pytest.raises(ManifestError) as info:
        parse_manifest({**GOOD, "colour": "red"}, "x.yaml")
    assert info.value.errors[0][0] == "/colour"
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(path)


def test_mcp_binding_needs_exactly_one_transport():
    with pytest.raises(ManifestError, match="exactly one"):
        parse_manifest({**GOOD, "binding": {"type": "mcp"}, "actions": []}, "m.yaml")


def test_shipped_schema_matches_the_models():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), "run: python -m toolkit.manifest --write-schema"


def test_a_comma_in_an_unquoted_flow_value_is_refused_where_it_happened(tmp_path):
    # YAML reads `description: Seed, random when omitted` inside {...} as a description "Seed" and a
    # keyword "random when omitted" with no value: the manifest would load with half its description
    path = tmp_path / "comma.yaml"
    path.write_text(
        "name: echo\ndescription: Echo text back.\nbinding: {type: python, module: tests.fixtures.echo_tools}\n"
        "actions:\n  - name: echo\n    description: Return the text.\n    input_schema:\n      type: object\n"
        "      properties:\n        text: {type: string, description: The text, as written by the user.}\n"
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    (line,) = info.value.lines()
    assert "/actions/0/input_schema" in line and "properties/text/as written by the user." in line
    assert "quote the value" in line
    quoted = path.read_text().replace("The text, as written by the user.", '"The text, as written by the user."')
    path.write_text(quoted)
    schema = load_manifest(path).actions[0].input_schema["properties"]["text"]
    assert schema == {"type": "string", "description": "The text, as written by the user."}


def test_shipped_manifests_hold_no_keyword_without_a_value():
    for path in sorted(Path("tool_manifests").glob("*.yaml")):
        manifest = load_manifest(path)  # refused if a schema had one (schema_problems)
        assert manifest.actions, path
