"""The executor's fast argument check never accepts what jsonschema rejects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from toolkit.runtime.flat_schema import flat_check

NAMES = st.sampled_from(["a", "b", "c", "x"])
TYPES = st.sampled_from(["string", "integer", "number", "boolean"])
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@st.composite
def flat_schemas(draw):
    properties = draw(st.dictionaries(NAMES, TYPES.map(lambda t: {"type": t, "description": "d"}), max_size=4))
    schema = {"type": "object", "properties": properties, "required": draw(st.lists(NAMES, max_size=3, unique=True))}
    if draw(st.booleans()):
        schema["additionalProperties"] = draw(st.booleans())
    return schema


@pytest.mark.slow  # 500 examples: ~2.5 s of CPU
@settings(max_examples=500, deadline=None)
@given(flat_schemas(), st.dictionaries(NAMES, VALUES, max_size=4))
def test_certainly_valid_only_when_jsonschema_agrees(schema, arguments):
    check = flat_check(schema)
    assert check is not None
    valid = Draft202012Validator(schema).is_valid(arguments)
    if check(arguments):
        assert valid
    # the fast path must also take the ordinary valid case, or it buys nothing
    if valid and all(type(v) is not float for v in arguments.values()):
        assert check(arguments)


def test_schemas_it_does_not_understand_are_left_to_jsonschema():
    assert flat_check({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}) is None
    assert flat_check({"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}) is None
    assert flat_check({"type": "object", "properties": {"xs": {"type": "array"}}}) is None
    assert flat_check({"type": "object", "anyOf": [{"required": ["a"]}]}) is None
    assert flat_check({"type": "array"}) is None
    assert (
        flat_check({"type": "object", "properties": {"n": {"type": "integer"}}})({"n": 1.0}) is False
    )  # jsonschema decides
