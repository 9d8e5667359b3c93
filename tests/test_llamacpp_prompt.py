"""The embedded model's tool docs: signatures, not JSON schemas (pure text, no model needed)."""

from __future__ import annotations

from toolkit.models.llamacpp.prompt import tool_block
from toolkit.types import ToolSpec

BOOK = ToolSpec(
    name="trip.book",
    description="Book a trip.",
    parameters={
        "type": "object",
        "properties": {
            "who": {
                "type": "object",
                "description": "The traveller.",
                "properties": {"name": {"type": "string", "description": "Full name."}, "age": {"type": "integer"}},
                "required": ["name"],
            },
            "legs": {
                "type": "array",
                "items": {"type": "object", "properties": {"to": {"type": "string", "description": "City."}}},
            },
            "cabin": {"type": "string", "enum": ["eco", "biz"], "default": "eco"},
            "nights": {"type": ["integer", "null"]},
        },
        "required": ["who"],
    },
)


def test_a_tool_is_one_signature_line_with_types_optionality_enums_and_defaults():
    block = tool_block([BOOK], "")
    assert (
        "- trip.book(who: {name: string, age?: integer}, legs?: array of {to?: string}, "
        'cabin?: "eco" | "biz" = "eco", nights?: integer | null): Book a trip.'
    ) in block.splitlines()


def test_parameter_descriptions_follow_with_dotted_paths_into_objects_and_arrays():
    notes = tool_block([BOOK], "").split("Book a trip.\n", 1)[1].splitlines()[0]
    assert notes == "  who: The traveller. who.name: Full name. legs.to: City."


def test_no_parameters_and_tools_already_listed_in_the_system_text():
    bare = ToolSpec(name="clock.now", description="The time.", parameters={"type": "object", "properties": {}})
    assert "- clock.now(): The time." in tool_block([bare], "").splitlines()
    assert "Tools:" not in tool_block([bare], "Use clock.now for the time.")
