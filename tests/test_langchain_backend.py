"""The langchain backend with real langchain-core chat models:

- `GenericFakeChatModel`, the scripted chat model langchain-core ships for testing (it replays the
  AIMessages it is given; it has no `bind_tools`, so it also covers the prompt + text-parsing path);
- `LlamaChatModel` below, a small BaseChatModel over our embedded GGUF model through
  llama-cpp-python (chatml-function-calling), with a real `bind_tools`: tool calling end to end.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage, convert_to_openai_messages
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatResult

from toolkit import Agent
from toolkit.models import BackendError, load_backend
from toolkit.models.langchain import LangChainBackend, from_langchain_messages, to_langchain_messages
from toolkit.types import Constraint, LLMRequest, Message, ToolCall, ToolSpec

CALC = ToolSpec(
    name="math.calculate",
    description="Evaluate an arithmetic expression.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)


def ask(task: str, **kw: Any) -> LLMRequest:
    return LLMRequest(messages=[Message(role="user", content=task)], tools=[CALC], **kw)


def scripted(*replies: AIMessage | str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(replies))


def make_model(reply: str = "hello") -> GenericFakeChatModel:
    """A factory for the `langchain:module:attr` model string."""
    return scripted(reply)


async def test_tool_calls_and_usage_come_from_the_ai_message():
    reply = AIMessage(
        content="",
        tool_calls=[{"name": "math__calculate", "args": {"expression": "2+2"}, "id": "call_7"}],
        usage_metadata={
            "input_tokens": 31,
            "output_tokens": 9,
            "total_tokens": 40,
            "input_token_details": {"cache_read": 16},
        },
    )
    response = await LangChainBackend(scripted(reply)).generate(ask("2+2?"))
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_7", "math.calculate", {"expression": "2+2"})
    ]
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cached_tokens) == (31, 9, 16)


async def test_text_calls_are_parsed_and_bad_ones_become_parse_errors():
    backend = LangChainBackend(
        scripted(
            '{"name": "math.calculate", "arguments": {"expression": "7*6"}}', '{"name": "nope", "arguments": {}}', "42"
        )
    )
    assert not backend.native_tools  # GenericFakeChatModel has no bind_tools
    first = await backend.generate(ask("7*6?"))
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("math.calculate", {"expression": "7*6"})]
    second = await backend.generate(ask("?"))
    assert second.tool_calls == [] and "unknown tool 'nope'" in second.parse_error
    third = await backend.generate(ask("?"))
    assert third.text == "42" and third.parse_error is None


async def test_invalid_tool_calls_and_schema_violations_become_parse_errors():
    invalid = AIMessage(
        content="",
        invalid_tool_calls=[
            {"name": "math__calculate", "args": "{oops", "id": "c1", "error": "bad json", "type": "invalid_tool_call"}
        ],
    )
    wrong = AIMessage(content="", tool_calls=[{"name": "math__calculate", "args": {"expression": 5}, "id": "c2"}])
    backend = LangChainBackend(scripted(invalid, wrong))
    assert "bad json" in (await backend.generate(ask("x"))).parse_error
    assert "5 is not of type 'string'" in (await backend.generate(ask("x"))).parse_error


async def test_constraint_output_is_validated():
    backend = LangChainBackend(scripted('{"city": "Paris"}', "not json"))
    schema = Constraint(kind="json_schema", json_schema={"type": "object", "required": ["city"]})
    ok = await backend.generate(LLMRequest(messages=[Message(role="user", content="?")], constraint=schema))
    assert ok.text == '{"city": "Paris"}' and ok.parse_error is None
    bad = await backend.generate(LLMRequest(messages=[Message(role="user", content="?")], constraint=schema))
    assert "not valid JSON" in bad.parse_error


def test_messages_convert_both_ways():
    ours = [
        Message(role="system", content="be brief"),
        Message(role="user", content="2+2?"),
        Message(
            role="assistant",
            content="",
            tool_calls=[ToolCall(id="c1", name="math.calculate", arguments={"expression": "2+2"})],
        ),
        Message(role="tool", content="4", tool_call_id="c1", name="math.calculate"),
        Message(role="assistant", content="4"),
    ]
    lc = to_langchain_messages(ours)
    assert [type(m) for m in lc] == [SystemMessage, HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert lc[2].tool_calls[0]["name"] == "math__calculate" and lc[3].tool_call_id == "c1"
    back = from_langchain_messages(lc, aliases={"math__calculate": "math.calculate"})
    assert [(m.role, m.content) for m in back] == [(m.role, m.content) for m in ours]
    assert back[2].tool_calls[0] == ours[2].tool_calls[0]


def test_model_string_and_bad_targets():
    backend = load_backend("langchain:tests.test_langchain_backend:make_model", reply="hi")
    assert isinstance(backend, LangChainBackend) and isinstance(backend.model, GenericFakeChatModel)
    with pytest.raises(BackendError, match="MODULE:ATTRIBUTE"):
        load_backend("langchain:nomodule")
    with pytest.raises(BackendError, match="ModuleNotFoundError"):
        load_backend("langchain:no_such_module_xyz:model")
    with pytest.raises(BackendError, match="BaseChatModel"):
        LangChainBackend(object())


async def test_agent_runs_a_task_on_a_langchain_model():
    model = scripted(
        AIMessage(
            content="", tool_calls=[{"name": "math__calculate", "args": {"expression": "12 * (7 + 5)"}, "id": "c1"}]
        ),
        "The answer is 144.",
    )
    agent = Agent(model=LangChainBackend(model), tool_names=["math"])
    result = await agent.arun("What is 12 * (7 + 5)?")
    assert result.answer == "The answer is 144."
    assert result.calls and result.calls[0].name.startswith("math")
    assert result.observations[0].ok and "144" in result.observations[0].text


# --- a real model behind LangChain ----------------------------------------------------------


class LlamaChatModel(BaseChatModel):
    """A minimal LangChain chat model over llama-cpp-python's chat completion (the embedded GGUF,
    chatml-function-calling), with `bind_tools`: the kind of BaseChatModel a user brings."""

    llama: Any

    @property
    def _llm_type(self) -> str:
        return "toolkit-test-llama"

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        if tool_choice and tool_choice not in ("auto", "none", "required"):
            tool_choice = {"type": "function", "function": {"name": tool_choice}}
        return self.bind(tools=list(tools), tool_choice=tool_choice or "auto", **kwargs)

    def _generate(
        self, messages: list[Any], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        out = self.llama.create_chat_completion(
            messages=convert_to_openai_messages(messages), stop=stop, temperature=0.0, max_tokens=48, **kwargs
        )
        message = out["choices"][0]["message"]
        calls, invalid = [], []
        for raw in message.get("tool_calls") or []:  # as langchain-openai does it
            try:
                calls.append(parse_tool_call(raw, return_id=True))
            except OutputParserException as exc:
                invalid.append(make_invalid_tool_call(raw, str(exc)))
        usage = out.get("usage") or {}
        ai = AIMessage(
            content=message.get("content") or "",
            tool_calls=calls,
            invalid_tool_calls=invalid,
            usage_metadata={
                "input_tokens": usage.get("prompt_tokens", 0),
                "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=ai)])


@pytest.fixture(scope="module")
def llama_model(gguf_model):
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(gguf_model),
        chat_format="chatml-function-calling",
        n_ctx=2048,
        n_threads=1,
        n_threads_batch=1,
        verbose=False,
        seed=0,
    )


ADD = ToolSpec(
    name="math.add",
    description="Add two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


async def test_a_real_model_calls_a_tool_through_bind_tools(llama_model):
    backend = LangChainBackend(LlamaChatModel(llama=llama_model))
    assert backend.native_tools
    request = LLMRequest(messages=[Message(role="user", content="Add 2 and 3.")], tools=[ADD], tool_choice="math.add")
    response = await backend.generate(request)
    assert response.parse_error is None, response.parse_error
    assert [c.name for c in response.tool_calls] == ["math.add"]  # bound as math__add, mapped back
    assert set(response.tool_calls[0].arguments) == {"a", "b"}
    assert all(isinstance(v, int) for v in response.tool_calls[0].arguments.values())
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
