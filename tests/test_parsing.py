"""The output parsing path on the shapes models really write."""

from __future__ import annotations

import pytest

from toolkit.models.parsing import parse_model_output, parse_native_calls
from toolkit.types import ToolSpec

TOOLS = [
    ToolSpec(
        name="math.calculate",
        parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    ),
    ToolSpec(
        name="search.web",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}, "k": {"type": "integer"}},
            "required": ["query"],
        },
    ),
]


@pytest.mark.parametrize(
    "output, expected",
    [
        ('{"name": "math.calculate", "arguments": {"expression": "2+2"}}', [("math.calculate", {"expression": "2+2"})]),
        (
            '{"tool": "math__calculate", "args": "{\\"expression\\": \\"3\\"}"}',
            [("math.calculate", {"expression": "3"})],
        ),
        (
            '{"type": "function", "function": {"name": "search__web", "arguments": "{\\"query\\": \\"q\\"}"}}',
            [("search.web", {"query": "q"})],
        ),
        (
            '<tool_call>\n{"name": "calculate", "arguments": {"expression": "1"}}\n</tool_call>\n<tool_call>{"name": "search.web", "arguments": {"query": "a"}}</tool_call>',
            [("math.calculate", {"expression": "1"}), ("search.web", {"query": "a"})],
        ),
        (
            'Let me compute.\n```json\n[{"name": "math.calculate", "arguments": {"expression": "7*6"}}]\n```',
            [("math.calculate", {"expression": "7*6"})],
        ),
        (
            '{"tool_calls": [{"name": "search.web", "arguments": {"query": "x", "k": 2}}]}',
            [("search.web", {"query": "x", "k": 2})],
        ),
        ('[TOOL_CALLS] [{"name": "search.web", "arguments": {"query": "m"}}]', [("search.web", {"query": "m"})]),
        ('<function=search.web>{"query": "z"}</function>', [("search.web", {"query": "z"})]),
        (
            '{"name": "math.calculate", "arguments": "2*3"}',
            [("math.calculate", {"expression": "2*3"})],
        ),  # bare string, one param
    ],
)
def test_calls_are_recognised_in_every_shape(output, expected):
    parsed = parse_model_output(output, TOOLS)
    assert parsed.error is None
    assert [(c.name, c.arguments) for c in parsed.calls] == expected


def test_thought_around_a_call_is_kept_as_text():
    parsed = parse_model_output(
        'Let me compute.\n```json\n{"name": "math.calculate", "arguments": {"expression": "1"}}\n```', TOOLS
    )
    assert parsed.text == "Let me compute."


@pytest.mark.parametrize(
    "output, fragment",
    [
        ('{"name": "weather", "arguments": {}}', "unknown tool 'weather'"),
        ('{"name": "search.web", "arguments": {"query": "q", "k": "five"}}', "'five' is not of type 'integer'"),
        ('{"name": "search.web", "arguments": {}}', "'query' is a required property"),
        ('{"name": "search.web"}', "'query' is a required property"),  # no arguments at all
        ('{"name": "search.web", "arguments": [1, 2]}', "must be a JSON object"),
        ('{"name": "math.calculate", "arguments": {"expression": "2+', "invalid JSON"),
        ('<tool_call>{"name": "search.web", "arguments": {"query": "q"</tool_call>', "invalid JSON"),
        ('{"name": "search.web", "arguments": {"query": "q", "k": ' + "9" * 5000 + "}}", "4300 digits"),
    ],
)
def test_bad_calls_become_a_parse_error_with_the_reason(output, fragment):
    parsed = parse_model_output(output, TOOLS)
    assert not parsed.calls
    assert parsed.error and fragment in parsed.error
    assert parsed.text == output  # shown back to the model


def test_one_bad_call_in_a_batch_rejects_the_batch():
    parsed = parse_model_output(
        '[{"name": "math.calculate", "arguments": {"expression": "1"}}, {"name": "nope", "arguments": {}}]', TOOLS
    )
    assert not parsed.calls and "unknown tool 'nope'" in parsed.error


@pytest.mark.parametrize(
    "output, answer",
    [
        ("The answer is 42.", "The answer is 42."),
        ('{"name": "Bob", "age": 3}', '{"name": "Bob", "age": 3}'),  # data, not a call
        ('{"action": "Final Answer", "action_input": "42"}', "42"),
        ('{"final_answer": "done"}', "done"),
        ('{"name": "final_answer", "arguments": {"answer": "yes"}}', "yes"),
    ],
)
def test_answers_stay_answers(output, answer):
    parsed = parse_model_output(output, TOOLS)
    assert parsed.calls == [] and parsed.error is None and parsed.text == answer


def test_tool_choice_required_and_none():
    assert "required" in parse_model_output("hi", TOOLS, tool_choice="required").error
    none = parse_model_output('{"name": "math.calculate", "arguments": {"expression": "1"}}', TOOLS, tool_choice="none")
    assert none.calls == [] and none.error is None


def test_lone_surrogates_are_replaced_so_output_serialises():
    parsed = parse_model_output('{"name": "math.calculate", "arguments": {"expression": "\\ud800x"}}', TOOLS)
    assert parsed.calls[0].arguments["expression"].endswith("x")
    parsed.to_response().model_dump_json()


def test_native_calls_keep_ids_and_map_names_back():
    parsed = parse_native_calls(
        [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "math__calculate", "arguments": '{"expression": "5"}'},
            },
            {"name": "search.web", "args": {"query": "q"}, "id": "lc_2"},
        ],
        TOOLS,
    )
    assert [(c.id, c.name) for c in parsed.calls] == [("call_1", "math.calculate"), ("lc_2", "search.web")]
    response = parsed.to_response()
    assert response.finish_reason == "tool_calls"
