"""The vllm backend against tests/vllm_standin.py: a STAND-IN for vLLM's AsyncLLM (vLLM needs a GPU).
What is checked is our side: engine arguments, prompts from the chat template, the constraint sent
as StructuredOutputsParams, concurrent requests in flight together, outputs read from vLLM's shapes.
benchmarks/vllm_smoke.py runs the same backend against real vLLM."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from tests import vllm_standin
from toolkit import Agent
from toolkit.models import BackendError, load_backend
from toolkit.models.vllm import VLLMBackend, tool_call_schema
from toolkit.types import Constraint, LLMRequest, Message, ToolSpec

CALC = ToolSpec(
    name="math.calculate",
    description="Evaluate an arithmetic expression.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
SEARCH = ToolSpec(
    name="search.web",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}, "k": {"type": "integer"}},
        "required": ["query"],
    },
)
SYSTEM = Message(role="system", content="You solve tasks with tools. " + "Tool documentation. " * 40)


@pytest.fixture
def backend(monkeypatch) -> VLLMBackend:
    vllm_standin.install(monkeypatch)
    b = load_backend("vllm:Qwen/Qwen2.5-0.5B-Instruct", max_model_len=4096)
    assert isinstance(b, VLLMBackend)
    return b


def ask(task: str, tools=(CALC, SEARCH), **kw) -> LLMRequest:
    return LLMRequest(messages=[SYSTEM, Message(role="user", content=task)], tools=list(tools), **kw)


def test_engine_is_started_with_prefix_caching_and_the_callers_options(backend):
    args = backend.engine.engine_args
    assert args.model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert args.enable_prefix_caching is True and args.max_model_len == 4096


async def test_tool_call_is_decoded_under_the_tools_schema(backend):
    backend.engine.responder = lambda prompt, params: (
        '{"name": "math.calculate", "arguments": {"expression": "12*(7+5)"}}'
    )
    response = await backend.generate(ask("What is 12 * (7 + 5)?"))
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("math.calculate", {"expression": "12*(7+5)"})]
    assert response.finish_reason == "tool_calls" and response.parse_error is None
    sent = backend.engine.requests[-1]
    schema = sent.params.structured_outputs.json
    names = [b["properties"]["name"]["const"] for b in schema["anyOf"] if "name" in b.get("properties", {})]
    assert names == ["math.calculate", "search.web"]
    assert {"final_answer"} in [set(b["properties"]) for b in schema["anyOf"]]
    # the prompt is the chat template's rendering: system (with the reply format), then the user turn
    assert sent.prompt.startswith("<|im_start|>system\nYou solve tasks")
    assert '{"final_answer": "..."}' in sent.prompt
    assert sent.prompt.endswith("<|im_start|>user\nWhat is 12 * (7 + 5)?<|im_end|>\n<|im_start|>assistant\n")
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    assert response.timings.ttft_s is not None and response.timings.total_s >= response.timings.ttft_s


async def test_final_answer_and_parallel_calls(backend):
    backend.engine.responder = lambda p, s: '{"final_answer": "144"}'
    answer = await backend.generate(ask("12*12?"))
    assert answer.text == "144" and answer.tool_calls == []
    backend.engine.responder = lambda p, s: json.dumps(
        {
            "tool_calls": [
                {"name": "search.web", "arguments": {"query": "a"}},
                {"name": "search.web", "arguments": {"query": "b", "k": 2}},
            ]
        }
    )
    batch = await backend.generate(ask("two searches"))
    assert [c.arguments for c in batch.tool_calls] == [{"query": "a"}, {"query": "b", "k": 2}]


def test_tool_choice_shapes_the_schema():
    required = tool_call_schema([CALC, SEARCH], "required", parallel=False)
    assert all("final_answer" not in b["properties"] for b in required["anyOf"]) and len(required["anyOf"]) == 2
    one = tool_call_schema([CALC, SEARCH], "search.web", parallel=False)
    assert [b["properties"]["name"]["const"] for b in one["anyOf"]] == ["search.web"]


async def test_history_shows_earlier_calls_as_the_constrained_json(backend):
    from toolkit.types import ToolCall

    history = [
        SYSTEM,
        Message(role="user", content="q"),
        Message(role="assistant", tool_calls=[ToolCall(name="search.web", arguments={"query": "q"})]),
        Message(role="tool", content="result text", tool_call_id="c1", name="search.web"),
    ]
    backend.engine.responder = lambda p, s: '{"final_answer": "done"}'
    await backend.generate(LLMRequest(messages=history, tools=[CALC, SEARCH]))
    prompt = backend.engine.requests[-1].prompt
    assert '<|im_start|>assistant\n{"name": "search.web", "arguments": {"query": "q"}}<|im_end|>' in prompt
    assert "<|im_start|>tool\nresult text<|im_end|>" in prompt


async def test_constraints_become_structured_outputs_params(backend):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    backend.engine.responder = lambda p, s: '{"city": "Paris"}'
    out = await backend.generate(
        LLMRequest(
            messages=[Message(role="user", content="capital of France?")],
            constraint=Constraint(kind="json_schema", json_schema=schema),
        )
    )
    assert json.loads(out.text) == {"city": "Paris"} and out.parse_error is None
    assert backend.engine.requests[-1].params.structured_outputs.json == schema
    backend.engine.responder = vllm_standin.default_responder
    choice = await backend.generate(
        LLMRequest(
            messages=[Message(role="user", content="yes or no?")],
            constraint=Constraint(kind="choice", choices=["yes", "no"]),
        )
    )
    assert choice.text == "yes" and backend.engine.requests[-1].params.structured_outputs.choice == ["yes", "no"]


async def test_concurrent_requests_are_decoded_in_one_batch_and_share_the_prefix(backend):
    backend.engine.responder = lambda p, s: '{"final_answer": "' + "word " * 20 + '"}'
    responses = await asyncio.gather(*(backend.generate(ask(f"task {i}")) for i in range(8)))
    assert all(r.text.startswith("word") for r in responses)
    assert max(backend.engine.batch_sizes) == 8  # all eight in flight in the same engine steps
    # prefix caching: every request after the first reuses the shared system prompt's blocks
    assert responses[0].usage.cached_tokens == 0
    assert all(r.usage.cached_tokens >= 16 for r in responses[1:])


async def test_agent_runs_a_task_through_the_backend(backend):
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def respond(prompt: str, params) -> str:
        if "<|im_start|>tool" in prompt:
            return '{"final_answer": "5"}'
        return '{"name": "add", "arguments": {"a": 2, "b": 3}}'

    backend.engine.responder = respond
    agent = Agent(model=backend, tools=[add], tool_names=["add"], approver="auto")
    result = await agent.arun("Add 2 and 3")
    assert result.answer == "5"
    assert [(c.name, c.arguments) for c in result.calls] == [("add", {"a": 2, "b": 3})]
    assert result.observations[0].ok and result.observations[0].content == 5


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(BackendError, match="pip install toolkit\\[vllm\\]"):
        load_backend("vllm:some/model")


def test_bad_engine_option_is_a_clear_error(monkeypatch):
    vllm_standin.install(monkeypatch)
    with pytest.raises(BackendError, match="bad engine option"):
        load_backend("vllm:some/model", no_such_option=1)
