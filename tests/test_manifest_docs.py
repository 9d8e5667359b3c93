"""docs/manifest.md documents every field of the shipped JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

from toolkit.manifest import SCHEMA_PATH

DOC = Path(__file__).resolve().parent.parent / "docs" / "manifest.md"


def schema_fields(schema: dict) -> set[str]:
    names: set[str] = set(schema.get("properties", {}))
    for definition in schema.get("$defs", {}).values():
        names |= set(definition.get("properties", {}))
    return names


def test_every_schema_field_is_documented():
    schema = json.loads(SCHEMA_PATH.read_text())
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), flags=re.M))
    missing = schema_fields(schema) - documented
    assert not missing, f"fields missing from docs/manifest.md: {sorted(missing)}"
    assert len(schema_fields(schema)) > 25  # the walk really found the nested definitions
