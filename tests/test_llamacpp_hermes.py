"""The model's own tool format on a real GGUF whose template has one (Qwen2.5-Coder 0.5B: `<tools>`,
`<tool_call>` blocks, `<tool_response>` results): calls parse and validate, an answer is plain
text, tool_choice none can't open a call, results are shown in the template's tool turn, prefixes
are reused. Several calls in one turn are not tested here: Qwen 0.5B wrote them once on the BFCL
samples of docs/models.md, and not when an earlier turn showed two calls.
Skipped, with the reason, when the Qwen tier is not installed (TOOLKIT_TEST_HERMES_MODEL names
another model string or GGUF path to use)."""

from __future__ import annotations

import asyncio
import os

import jsonschema
import pytest

pytest.importorskip("llama_cpp")

from toolkit.models.base import BackendError  # noqa: E402
from toolkit.models.llamacpp.backend import LlamaCppBackend  # noqa: E402
from toolkit.models.llamacpp.files import resolve_model  # noqa: E402
from toolkit.models.llamacpp.formats import HERMES  # noqa: E402
from toolkit.types import LLMRequest, Message, Sampling, ToolSpec  # noqa: E402

pytestmark = pytest.mark.llama

MODEL = os.environ.get("TOOLKIT_TEST_HERMES_MODEL", "llamacpp:qwen2.5-coder-0.5b")

CALCULATE = ToolSpec(
    name="math.calculate",
    description="Evaluate an arithmetic expression exactly.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
WEATHER = ToolSpec(
    name="weather.forecast",
    description="The weather forecast for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
SYSTEM = "You solve tasks with tools."


@pytest.fixture(scope="module")
def backend():
    kind, _, target = MODEL.partition(":")
    try:
        model = resolve_model(kind, target) if target else resolve_model("llamacpp", MODEL)
    except BackendError as exc:
        pytest.skip(f"no model with a tool format of its own here ({MODEL}): {exc}")
    b = LlamaCppBackend(model, n_ctx=4096, max_sequences=4)
    yield b
    asyncio.run(b.aclose())


def ask(backend, request):
    return asyncio.run(backend.generate(request))


def user(text: str) -> list[Message]:
    return [Message(role="system", content=SYSTEM), Message(role="user", content=text)]


def test_the_template_with_tool_calls_is_used_with_the_tools_it_lists(backend):
    assert backend.tool_format is HERMES
    text = backend.engine.detokenize(
        backend.prompt_tokens(LLMRequest(messages=user("What is 2 + 2?"), tools=[CALCULATE]), with_tools=True)
    )
    assert "<tools>" in text and '"name": "math.calculate"' in text and "<tool_call>" in text
    assert "Reply with JSON" not in text  # the generic format's instructions are not added


def test_a_call_in_the_models_format_is_parsed_and_validated(backend):
    r = ask(backend, LLMRequest(messages=user("What is 12 * (7 + 5)?"), tools=[CALCULATE, WEATHER]))
    assert r.parse_error is None and [c.name for c in r.tool_calls] == ["math.calculate"]
    jsonschema.validate(r.tool_calls[0].arguments, CALCULATE.parameters)
    assert r.finish_reason == "tool_calls"


def test_an_answer_is_plain_text_and_tool_choice_none_cannot_open_a_call(backend):
    r = ask(backend, LLMRequest(messages=user("Hello! Who are you?"), tools=[CALCULATE, WEATHER]))
    assert r.tool_calls == [] and r.parse_error is None and len(r.text) > 3
    assert "<tool_call>" not in r.text
    r = ask(
        backend,
        LLMRequest(
            messages=user("What is 2 + 2?"), tools=[CALCULATE], tool_choice="none", sampling=Sampling(max_tokens=40)
        ),
    )
    assert r.tool_calls == [] and r.text and r.text.lstrip()[0] not in "<{`"


def test_required_and_named_tool_choice_open_a_call_at_once(backend):
    r = ask(backend, LLMRequest(messages=user("Hello!"), tools=[CALCULATE, WEATHER], tool_choice="required"))
    assert r.parse_error is None and len(r.tool_calls) >= 1
    r = ask(backend, LLMRequest(messages=user("Oslo?"), tools=[CALCULATE, WEATHER], tool_choice="weather.forecast"))
    assert [c.name for c in r.tool_calls] == ["weather.forecast"]


def test_results_come_back_in_the_templates_tool_turn_and_the_prefix_is_reused(backend):
    request = LLMRequest(messages=user("What is 3 * 3?"), tools=[CALCULATE, WEATHER])
    first = ask(backend, request)
    step2 = request.model_copy(deep=True)
    step2.messages += [
        Message(role="assistant", tool_calls=first.tool_calls),
        Message(role="tool", content="9", tool_call_id=first.tool_calls[0].id, name="math.calculate"),
    ]
    text = backend.engine.detokenize(backend.prompt_tokens(step2, with_tools=True))
    assert "<tool_response>\n9\n</tool_response>" in text and '<tool_call>\n{"name": "math.calculate"' in text
    second = ask(backend, step2)
    # the whole first prompt, and the call's own tokens after it, come from the KV cache
    assert second.usage.cached_tokens > len(backend.prompt_tokens(request, with_tools=True))
