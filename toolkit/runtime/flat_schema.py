"""A fast "certainly valid" check for the flat argument schemas most tools have.

jsonschema's validator costs ~40 us a call even for `{"x": {"type": "integer"}}`, a third of the
executor's whole overhead per step (benchmarks/overhead.py). Most tool schemas are an object of
primitive-typed properties with a required list, so `flat_check(schema)` compiles such a schema
into a plain-Python predicate. It only ever answers "valid" when jsonschema would: anything it
doesn't understand (another keyword, a float for an integer) makes it answer False, and the
executor then runs jsonschema, which decides and writes the error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ANNOTATIONS = {"description", "title", "default", "examples", "$comment"}
OBJECT_KEYS = ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "$schema"}
PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}

FlatCheck = Callable[[dict[str, Any]], bool]


def flat_check(schema: Any) -> FlatCheck | None:
    """A predicate that is True only for instances `schema` accepts, or None if the schema is not flat."""
    if not isinstance(schema, dict) or set(schema) - OBJECT_KEYS or schema.get("type", "object") != "object":
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if (
        not isinstance(properties, dict)
        or not isinstance(extra, bool)
        or not (isinstance(required, list) and all(isinstance(r, str) for r in required))
    ):
        return None
    types: dict[str, Callable[[Any], bool]] = {}
    for name, sub in properties.items():
        kind = sub.get("type") if isinstance(sub, dict) else None
        if not isinstance(kind, str) or kind not in PRIMITIVES or set(sub) - ANNOTATIONS - {"type"}:
            return None
        types[name] = PRIMITIVES[kind]

    def check(arguments: dict[str, Any]) -> bool:
        for name in required:
            if name not in arguments:
                return False
        for name, value in arguments.items():
            is_type = types.get(name)
            if is_type is None:
                if not extra:
                    return False
            elif not is_type(value):
                return False
        return True

    return check
