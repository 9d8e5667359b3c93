"""The OpenAI wire format without a server: request bodies per server dialect, replies with calls
left in `content`, stream assembly in the styles different servers use."""

from __future__ import annotations

import json

from toolkit.models.openai_payload import StreamAssembler, build_body, check_constraint, response_from_body
from toolkit.types import Constraint, LLMRequest, Message, Timings, ToolCall, ToolSpec

CALC = ToolSpec(
    name="math.calculate",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def req(**kw) -> LLMRequest:
    return LLMRequest(messages=[Message(role="user", content="hi")], **kw)


def test_constraints_per_dialect():
    js = Constraint(kind="json_schema", json_schema=SCHEMA)
    choice = Constraint(kind="choice", choices=["yes", "no"])
    grammar = Constraint(kind="grammar", grammar='root ::= "x"')
    assert build_body(req(constraint=js), "m", "vllm", stream=False)["structured_outputs"] == {"json": SCHEMA}
    assert build_body(req(constraint=choice), "m", "vllm", stream=False)["structured_outputs"] == {
        "choice": ["yes", "no"]
    }
    assert build_body(req(constraint=grammar), "m", "vllm", stream=False)["structured_outputs"] == {
        "grammar": 'root ::= "x"'
    }
    openai = build_body(req(constraint=js), "m", "openai", stream=False)["response_format"]
    assert openai == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA, "strict": False}}
    assert build_body(req(constraint=js), "m", "llamacpp", stream=False)["response_format"] == {
        "type": "json_object",
        "schema": SCHEMA,
    }
    assert build_body(req(constraint=grammar), "m", "llamacpp", stream=False)["grammar"] == 'root ::= "x"'
    # a choice on OpenAI is an object schema whose value is unwrapped again
    assert check_constraint('{"choice": "no"}', choice, "openai") == ("no", None)
    assert check_constraint("maybe", choice, "vllm")[1] == "expected one of ['yes', 'no'], got 'maybe'"
    assert "at a" in check_constraint('{"a": "x"}', js, "openai")[1]


def test_tools_messages_and_stream_fields():
    history = [
        Message(role="user", content="2+2?"),
        Message(
            role="assistant", tool_calls=[ToolCall(id="c1", name="math.calculate", arguments={"expression": "2+2"})]
        ),
        Message(role="tool", content="4", tool_call_id="c1", name="math.calculate"),
    ]
    body = build_body(
        LLMRequest(messages=history, tools=[CALC], tool_choice="required", parallel_tool_calls=False),
        "m",
        "openai",
        stream=True,
    )
    assert body["tools"][0]["function"]["name"] == "math__calculate" and body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False and body["stream_options"] == {"include_usage": True}
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "math__calculate", "arguments": '{"expression": "2+2"}'},
            }
        ],
    }
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "4"}
    assert "tools" not in build_body(
        req(tools=[CALC], constraint=Constraint(kind="choice", choices=["a"])), "m", "openai", stream=False
    )


def test_calls_left_in_content_are_parsed():
    body = {
        "choices": [
            {
                "message": {
                    "content": '<tool_call>\n{"name": "math__calculate", "arguments": {"expression": "1+1"}}\n</tool_call>'
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}},
    }
    response = response_from_body(req(tools=[CALC]), "vllm", body, Timings(total_s=1.0))
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("math.calculate", {"expression": "1+1"})]
    assert response.finish_reason == "tool_calls" and response.usage.cached_tokens == 8
    legacy = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "function_call": {"name": "math__calculate", "arguments": '{"expression": "3"}'},
                }
            }
        ]
    }
    assert response_from_body(req(tools=[CALC]), "openai", legacy, Timings()).tool_calls[0].arguments == {
        "expression": "3"
    }
    broken = {
        "choices": [
            {
                "message": {
                    "tool_calls": [{"id": "x", "function": {"name": "math__calculate", "arguments": '{"expression": '}}]
                }
            }
        ]
    }
    assert "not a JSON object" in response_from_body(req(tools=[CALC]), "openai", broken, Timings()).parse_error
    assert response_from_body(req(), "openai", {"error": "boom"}, Timings()).finish_reason == "error"


def chunks(*deltas, usage=None):
    out = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    if usage:
        out.append({"choices": [], "usage": usage})
    return out


def test_stream_assembly_openai_style_and_llama_style():
    openai_style = chunks(
        {"role": "assistant", "content": None},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "math__calculate", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"expre'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'ssion": "9"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_2",
                    "function": {"name": "math__calculate", "arguments": '{"expression": "8"}'},
                }
            ]
        },
        usage={"prompt_tokens": 20, "completion_tokens": 12},
    )
    llama_style = chunks(
        *[
            {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "math__calculate", "arguments": piece}}]}
            for piece in ['{"', "expression", '": "', "7", '"}']
        ]
    )
    for stream, expected in ((openai_style, ["9", "8"]), (llama_style, ["7"])):
        assembler = StreamAssembler()
        for c in stream:
            assembler.add(json.loads(json.dumps(c)))
        response = assembler.response(req(tools=[CALC]), "openai", Timings(total_s=2.0, ttft_s=0.5))
        assert response.parse_error is None
        assert [c.arguments["expression"] for c in response.tool_calls] == expected
        assert all(c.name == "math.calculate" for c in response.tool_calls)
    assert response.usage.completion_tokens == 5  # no usage chunk: one token per chunk with tokens
