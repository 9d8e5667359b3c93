"""Property test of the output parsing path: 1,000 random and adversarial model outputs (random
text with lone surrogates, call-shaped JSON with right and wrong names and types, truncations,
deep nesting, huge numbers, arguments as JSON strings, every wrapper the parser knows) each become
either validated calls or text (with or without a parse_error), never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from toolkit.models.openai_payload import StreamAssembler, response_from_body
from toolkit.models.parsing import ParsedOutput, parse_model_output, parse_native_calls
from toolkit.types import LLMRequest, Message, Timings, ToolSpec

TOOLS = [
    ToolSpec(
        name="math.calculate",
        parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    ),
    ToolSpec(
        name="search.web",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "minLength": 1}, "k": {"type": "integer", "minimum": 1}},
            "required": ["query"],
            "additionalProperties": False,
        },
    ),
    ToolSpec(name="clock", parameters={"type": "object", "properties": {}}),
]
SCHEMAS = {t.name: Draft202012Validator(t.parameters) for t in TOOLS}

any_char = st.characters(codec=None, exclude_categories=())  # lone surrogates included
names = (
    st.sampled_from(
        [
            "math.calculate",
            "math__calculate",
            "calculate",
            "search.web",
            "search__web",
            "web",
            "clock",
            "CLOCK",
            "final_answer",
            "weather",
            "",
            " ",
            "math.calculate.x",
        ]
    )
    | st.text(any_char, max_size=12)
    | st.integers()
    | st.none()
    | st.floats()
)
huge_number = st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(any_char, max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(any_char, max_size=8), inner, max_size=4),
    max_leaves=12,
)
arguments = (
    st.fixed_dictionaries({"expression": st.text(any_char, max_size=20)})
    | st.fixed_dictionaries({"query": st.text(max_size=10)}, optional={"k": json_scalars})
    | json_values
)
name_keys = st.sampled_from(["name", "tool", "tool_name", "action", "function"])
arg_keys = st.sampled_from(["arguments", "args", "parameters", "action_input", "input"])


@st.composite
def call_objects(draw) -> object:
    args = draw(arguments)
    if draw(st.booleans()):
        try:
            args = json.dumps(args)  # arguments given as a JSON string
        except ValueError:
            pass
    obj = {draw(name_keys): draw(names), draw(arg_keys): args}
    if draw(st.integers(0, 4)) == 0:
        obj = {"type": "function", "function": {"name": obj.get("name", "clock"), "arguments": args}}
    return obj


good_calls = st.one_of(
    st.builds(
        lambda n, e: {"name": n, "arguments": {"expression": e}},
        st.sampled_from(["math.calculate", "math__calculate", "calculate"]),
        st.text(any_char, max_size=20),
    ),
    st.builds(
        lambda q, k: {"tool": "search.web", "args": json.dumps({"query": q, "k": k})},
        st.text(min_size=1, max_size=10),
        st.integers(1, 10**6),
    ),
    st.just({"type": "function", "function": {"name": "clock", "arguments": "{}"}}),
)


def dumps(value: object, ascii_only: bool = False) -> str:
    """ascii_only turns lone surrogates into \\udXXX escapes, which json.loads turns back."""
    try:
        return json.dumps(value, ensure_ascii=ascii_only)
    except (ValueError, RecursionError):
        return "{}"


@st.composite
def call_texts(draw) -> str:
    objs = draw(st.lists(good_calls if draw(st.booleans()) else call_objects(), min_size=1, max_size=3))
    body = dumps(objs if len(objs) > 1 or draw(st.booleans()) else objs[0], draw(st.booleans()))
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # truncated, as at max_tokens
    wrap = draw(
        st.sampled_from(
            [
                "{}",
                "<tool_call>\n{}\n</tool_call>",
                "<tool_call>{}",
                "```json\n{}\n```",
                "```\n{}",
                "[TOOL_CALLS] {}",
                "Thought: let me check.\n{}",
                "{} and more",
            ]
        )
    )
    return wrap.replace("{}", body, 1)


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "args":
        return '{"name": "clock", "arguments": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    return '{"a": ' * depth + "1" + "}" * depth


adversarial = st.one_of(
    st.text(any_char, max_size=300),
    call_texts(),
    st.builds(nested, st.integers(1, 5000), st.sampled_from(["list", "dict", "args"])),
    st.builds(
        lambda h, n: '{"name": "search.web", "arguments": {"query": "x", "k": ' + h + "}}" if n else h,
        huge_number,
        st.booleans(),
    ),
    st.builds(dumps, json_values, st.booleans()),
    st.builds(lambda t: f"<tool_call>{t}</tool_call>", st.text(any_char, max_size=60)),
    st.builds(lambda t: f"<function={t}>", st.text(any_char, max_size=30)),
)


def check(parsed: ParsedOutput) -> None:
    assert isinstance(parsed, ParsedOutput)
    assert isinstance(parsed.text, str)
    event("calls" if parsed.calls else "parse_error" if parsed.error else "text")
    if parsed.calls:
        assert parsed.error is None
        for call in parsed.calls:
            assert call.name in SCHEMAS
            assert not list(SCHEMAS[call.name].iter_errors(call.arguments))
    # the response must serialise: traces and HTTP bodies carry it
    parsed.to_response().model_dump_json()


@pytest.mark.slow  # 1,000 examples: ~5 s of CPU
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(output=adversarial, tool_choice=st.sampled_from(["auto", "auto", "auto", "required", "none", "clock"]))
def test_any_model_output_becomes_calls_or_text(output: str, tool_choice: str) -> None:
    parsed = parse_model_output(output, TOOLS, tool_choice=tool_choice)
    check(parsed)
    if tool_choice == "none":
        assert not parsed.calls and parsed.error is None
    if tool_choice == "required":
        assert parsed.calls or parsed.error


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    raw=st.lists(good_calls | call_objects() | json_values, max_size=4) | json_values,
    text=st.text(any_char, max_size=40),
)
def test_any_structured_calls_become_calls_or_an_error(raw: object, text: str) -> None:
    parsed = parse_native_calls(raw, TOOLS, text=text)  # type: ignore[arg-type]
    check(parsed)
    assert parsed.calls or parsed.error or raw == []


# what a server may send back: bodies and stream chunks of the right, almost-right and wrong shapes
messages = st.fixed_dictionaries(
    {},
    optional={
        "content": st.none() | st.text(any_char, max_size=80) | adversarial | json_values,
        "tool_calls": st.lists(good_calls | call_objects() | json_values, max_size=3) | json_values,
        "function_call": call_objects() | json_values,
    },
)
bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "choices": st.lists(
                st.fixed_dictionaries({}, optional={"message": messages | json_values, "finish_reason": json_scalars}),
                max_size=2,
            )
            | json_values,
            "usage": st.dictionaries(
                st.sampled_from(["prompt_tokens", "completion_tokens", "prompt_tokens_details"]), json_values
            )
            | json_values,
            "timings": json_values,
        },
    )
    | json_values
)
REQUEST = LLMRequest(messages=[Message(role="user", content="task")], tools=TOOLS)


@pytest.mark.slow  # 300 examples: ~4 s of CPU
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, chunks=st.lists(bodies, max_size=6))
def test_any_server_reply_becomes_a_response(body: object, chunks: list) -> None:
    response = response_from_body(REQUEST, "openai", body, Timings(total_s=1.0))
    check(ParsedOutput(response.text, response.tool_calls, response.parse_error))
    response.model_dump_json()
    assembler = StreamAssembler()
    for chunk in chunks:
        if isinstance(chunk, dict):
            assembler.add(chunk)
    streamed = assembler.response(REQUEST, "openai", Timings(total_s=1.0, ttft_s=0.5))
    check(ParsedOutput(streamed.text, streamed.tool_calls, streamed.parse_error))
