"""How the engine answers a BFCL question through its backend (the functions are never executed).

- `tool-turns`: the backend's own tool turn (llamacpp: a grammar-constrained choice of function or
  final answer, then the arguments under the function's schema). For more than one call, further
  turns with the calls so far in the conversation, until the model answers instead of calling, the
  budget is spent or it repeats a call. A follow-up turn's final answer is thrown away, so
  follow-ups get at most FOLLOW_UP_MAX_TOKENS (enough for a call's arguments): tiny models
  otherwise spend 200+ tokens on an answer nobody reads.
- `calls-list`: one request decoded under a JSON schema for a list of calls
  `{"calls": [{"name": <one of the functions>, "arguments": <its schema>}, ...]}` (at most
  `max_calls` items; an empty list means no function fits); identical calls are kept once. Each
  call is validated against its function's schema like any parsed call.
"""

from __future__ import annotations

import json
from typing import Any

from toolkit.planner.prompts import system_message
from toolkit.runtime.llm import Backend
from toolkit.runtime.llm.parsing import parse_native_calls
from toolkit.types import Constraint, LLMRequest, LLMResponse, Message, ToolCall

ENGINE_MODES = ("tool-turns", "calls-list")
NEXT_CALL_PROMPT = (
    "(Recorded; functions are not executed here.) If the question asks for another function call, "
    "make it now; otherwise give the final answer."
)
FOLLOW_UP_MAX_TOKENS = 128
LIST_FORMAT = (
    'Reply with a JSON object {"calls": [{"name": "<function>", "arguments": {...}}, ...]}: one item per '
    "function call the question asks for (several when it asks for several things), an empty list when "
    "no function fits the question."
)


def call_key(call: ToolCall) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True, default=str)


def unique(calls: list[ToolCall]) -> list[ToolCall]:
    seen: set[str] = set()
    kept = []
    for call in calls:
        if call_key(call) not in seen:
            seen.add(call_key(call))
            kept.append(call)
    return kept


async def tool_turns(backend: Backend, request: LLMRequest, max_calls: int) -> LLMResponse:
    response = await backend.generate(request)
    calls = list(response.tool_calls)
    while calls and not response.parse_error and len(calls) < max_calls:
        messages = [*request.messages, Message(role="assistant", tool_calls=calls), Message(role="user", content=NEXT_CALL_PROMPT)]
        sampling = request.sampling.model_copy(update={"max_tokens": min(request.sampling.max_tokens, FOLLOW_UP_MAX_TOKENS)})
        following = await backend.generate(request.model_copy(update={"messages": messages, "sampling": sampling}))
        new = [c for c in unique(following.tool_calls) if call_key(c) not in {call_key(k) for k in calls}]
        if following.parse_error or not new:
            break
        calls.extend(new)
    return response.model_copy(update={"tool_calls": calls[:max_calls]})


def calls_list_schema(request: LLMRequest, max_calls: int) -> dict[str, Any]:
    item = {
        "anyOf": [
            {"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.parameters},
             "required": ["name", "arguments"], "additionalProperties": False}
            for t in request.tools
        ]
    }
    return {"type": "object", "properties": {"calls": {"type": "array", "items": item, "maxItems": max_calls}},
            "required": ["calls"], "additionalProperties": False}


async def calls_list(backend: Backend, request: LLMRequest, max_calls: int) -> LLMResponse:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    messages = [system_message(request.tools, (system + "\n\n" + LIST_FORMAT).strip()),
                *(m for m in request.messages if m.role != "system")]
    constrained = request.model_copy(update={
        "messages": messages, "tools": [], "tool_choice": "none",
        "constraint": Constraint(kind="json_schema", json_schema=calls_list_schema(request, max_calls)),
    })
    response = await backend.generate(constrained)
    if response.parse_error or (response.tool_calls and not response.text.strip()):
        # a backend that returns native calls instead of text (scripted): take them as they are
        return response.model_copy(update={"tool_calls": unique(response.tool_calls)})
    try:
        items = json.loads(response.text, strict=False)["calls"]
    except (ValueError, KeyError, TypeError):
        cut = " (it hit max_tokens)" if response.finish_reason == "length" else ""
        return response.model_copy(update={"parse_error": f"the list of calls was not complete JSON{cut}"})
    parsed = parse_native_calls(items, request.tools) if items else None
    if parsed is not None and parsed.error:
        return response.model_copy(update={"parse_error": parsed.error})
    return response.model_copy(update={"text": "", "tool_calls": unique(parsed.calls if parsed else [])})
