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
  call is validated against its function's schema like any parsed call. Its prompt lists the
  functions as one-line signatures (as the llamacpp tool turn's does), not JSON schemas.
- `hybrid`: a tool turn decides whether to call; when it calls, the calls are the list's
  (`hybrid` below says why).
- `gated` (the default): `hybrid` with lexical evidence first (`toolkit.relevance`): a question
  that names a function (2+ words of its name) gets the list without a tool turn asking whether to
  call (asked again with the named functions only if it called none of them); one that shares no
  word with any function gets no call and no model request; the rest go through `hybrid`. Then
  calls after the first that add nothing are dropped (`gated` says why).
"""

from __future__ import annotations

import json
from typing import Any, cast

from toolkit.grounding import ground_numbers
from toolkit.models import Backend
from toolkit.models.base import StreamingBackend, supports_streaming
from toolkit.models.llamacpp.prompt import signature_text
from toolkit.models.parsing import parse_native_calls
from toolkit.relevance import by_name_words, drop_redundant_calls, named_tools, relevance
from toolkit.types import Constraint, LLMRequest, LLMResponse, Message, Timings, ToolCall

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


def request_text(request: LLMRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


def summed(first: LLMResponse, second: LLMResponse) -> dict[str, Any]:
    """Usage and time of two requests that made one answer."""
    return {
        "usage": first.usage + second.usage,
        "timings": Timings(total_s=first.timings.total_s + second.timings.total_s),
    }


async def tool_turns(backend: Backend, request: LLMRequest, max_calls: int) -> LLMResponse:
    response = await backend.generate(request)
    calls = list(response.tool_calls)
    while calls and not response.parse_error and len(calls) < max_calls:
        messages = [
            *request.messages,
            Message(role="assistant", tool_calls=calls),
            Message(role="user", content=NEXT_CALL_PROMPT),
        ]
        sampling = request.sampling.model_copy(
            update={"max_tokens": min(request.sampling.max_tokens, FOLLOW_UP_MAX_TOKENS)}
        )
        following = await backend.generate(request.model_copy(update={"messages": messages, "sampling": sampling}))
        new = [c for c in unique(following.tool_calls) if call_key(c) not in {call_key(k) for k in calls}]
        if following.parse_error or not new:
            break
        calls.extend(new)
    return response.model_copy(update={"tool_calls": calls[:max_calls]})


def calls_list_schema(request: LLMRequest, max_calls: int) -> dict[str, Any]:
    item = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in request.tools
        ]
    }
    return {
        "type": "object",
        "properties": {"calls": {"type": "array", "items": item, "maxItems": max_calls}},
        "required": ["calls"],
        "additionalProperties": False,
    }


def calls_list_system(request: LLMRequest) -> Message:
    """The request's system text, the functions as one-line signatures, the list format."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    functions = "\n".join(signature_text(t) for t in request.tools)
    return Message(role="system", content=f"{system}\n\nFunctions:\n{functions}\n\n{LIST_FORMAT}".strip())


class ListItems:
    """The items of the `calls` array of a JSON text read piece by piece, to find the first item
    that repeats an earlier one (the same JSON, key order aside)."""

    def __init__(self) -> None:
        self.text = ""
        self.depth = 0
        self.in_string = self.escaped = False
        self.start = 0  # where the item being read began
        self.end = 0  # where the last distinct item ended
        self.seen: set[str] = set()

    def feed(self, piece: str) -> int | None:
        """Once an item repeating an earlier one has been read: where the item before it ends."""
        begin, self.text = len(self.text), self.text + piece
        for i in range(begin, len(self.text)):
            ch = self.text[i]
            if self.in_string:
                self.in_string = self.escaped or ch != '"'
                self.escaped = not self.escaped and ch == "\\"
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
                if self.depth == 3:  # {"calls": [{item}, ...]}
                    self.start = i
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 2:  # an item ended
                    if ch == "}" and self._repeats(self.text[self.start : i + 1]):
                        return self.end
                    self.end = i + 1
        return None

    def _repeats(self, item: str) -> bool:
        try:
            key = json.dumps(json.loads(item), sort_keys=True)
        except ValueError:
            return False
        repeated = key in self.seen
        self.seen.add(key)
        return repeated


async def list_until_repeat(backend: Backend, request: LLMRequest) -> LLMResponse:
    """The constrained list, its decoding stopped at the first call that repeats an earlier one:
    SmolLM2 fills `maxItems` with copies of its call (`unique` drops them), and those copies were
    most of the tokens it decoded on `multiple` questions (241 for one call on multiple_10)."""
    if not supports_streaming(backend):
        return await backend.generate(request)
    items, cut, response = ListItems(), None, None
    stream = cast(StreamingBackend, backend).stream(request)  # supports_streaming said so
    try:
        piece = await anext(stream)
        while True:
            if isinstance(piece, LLMResponse):
                response = piece
                break
            if cut is None:
                cut = items.feed(piece)
            piece = await stream.asend(cut is not None)
    except StopAsyncIteration:
        pass
    response = response or LLMResponse(text=items.text)
    if cut is None:
        return response
    return response.model_copy(update={"text": items.text[:cut] + "]}", "finish_reason": "stop"})


async def calls_list(backend: Backend, request: LLMRequest, max_calls: int) -> LLMResponse:
    messages = [calls_list_system(request), *(m for m in request.messages if m.role != "system")]
    constrained = request.model_copy(
        update={
            "messages": messages,
            "tools": [],
            "tool_choice": "none",
            "constraint": Constraint(kind="json_schema", json_schema=calls_list_schema(request, max_calls)),
        }
    )
    response = await list_until_repeat(backend, constrained)
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


async def hybrid(backend: Backend, request: LLMRequest, max_calls: int) -> LLMResponse:
    """A tool turn decides whether to call at all; when it calls, the calls are decoded again as
    one list (`calls_list`), which is the answer unless it came back empty or unreadable (then the
    tool turn's calls are).

    The tool turn is the better judge of "no function fits" (irrelevance: 12/20 vs the list's
    3/20 on BFCL's first 20), the list the better writer of the calls (simple_python 14/20 vs
    11/20; parallel 4/20 vs 0/20: in a list the model sees the calls it wrote and moves on to the
    next values, in follow-up tool turns it copies the first call's).

    (Tried: the list with `minItems: 1`, since the tool turn has already said there is a call:
    llama.cpp's grammar for it differs and changed 20 of 75 lists, for the worse, 37 vs 40 of 100.
    Taking the list only when it begins with the tool turn's call: 37. Asking for the list after
    the tool turn's own prompt, to reuse its KV cache: 37% fewer uncached prompt tokens, but as
    slow, since the list decoded more, and 2/20 on parallel.)"""
    first = await backend.generate(request)
    if first.parse_error or not first.tool_calls:
        return first
    listed = await calls_list(backend, request, max_calls)
    return (first if listed.parse_error or not listed.tool_calls else listed).model_copy(update=summed(first, listed))


async def gated(backend: Backend, request: LLMRequest, max_calls: int) -> LLMResponse:
    """`hybrid` where the question's words settle whether to call (`toolkit.relevance`), and
    without calls that add nothing.

    - `named` (a function's name shares 2+ words with the question): call. The list's calls, or,
      if it comes back empty or unreadable, a tool turn that must call. On BFCL's first 200 of
      each category: 65-88% of the questions that need a call, 5% of irrelevant ones; SmolLM2's
      tool turn left 4 of the first 20 `multiple` questions ("What is the capital of Brazil?",
      with `country_info.capital` offered) without a call. When the list calls only functions
      the question does not name, while it names others, the list is asked again with only the
      named ones offered (`calculate_average` over `highest_grade` for "the average grade"): on
      the first 80 `multiple` questions this happened 11 times, right 1 -> 4 (one of them lost);
      on 60 `parallel_multiple` and 60 `irrelevance` questions 4 times, right 0 -> 0.
    - `unrelated` (no word shared with any function's name or description): no call, and no
      model request. 58% of irrelevant questions, at most 1.5% of the others.
    - `unclear`: `hybrid`.
    Then `ground_numbers` mends numbers the model cut at a thousands separator or copied without
    their minus sign (`initial_cost: 200` for "$200,000"); replayed on every recorded output, 4
    verdicts gained (multiple_11, 14, 16 twice), none lost.
    Then `drop_redundant_calls`: given several functions the list also calls the others with the
    values it already used (9 of the first 20 `multiple` questions had 2-3 calls for one asked).
    The calls are first ordered by how many words their function's name shares with the question
    (`by_name_words`), so that of two calls with the same values the less named one goes, also
    when the list wrote it first (`circle_properties.get(5)`, then `triangle_properties.get(5, 4,
    3)` for a question about a triangle). BFCL scores parallel calls in any order.
    (Tried: when the list leaves out the one function the question names best, adding a call to
    it from a tool turn forced to it: no gain on the first 20 `multiple` and
    `parallel_multiple` questions, for one more request.)"""
    said = request_text(request)
    verdict = relevance(request.tools, said)
    if verdict == "unrelated":
        return LLMResponse(text="(no call: no function shares a word with the question)", finish_reason="stop")
    if verdict == "named":
        response = await calls_list(backend, request, max_calls)
        named = named_tools(request.tools, said)
        if response.tool_calls and not {c.name for c in response.tool_calls} & {t.name for t in named}:
            narrowed = await calls_list(backend, request.model_copy(update={"tools": named}), max_calls)
            if not narrowed.parse_error and narrowed.tool_calls:
                response = narrowed.model_copy(update=summed(response, narrowed))
        if response.parse_error or not response.tool_calls:
            forced = await backend.generate(request.model_copy(update={"tool_choice": "required"}))
            response = forced.model_copy(update=summed(response, forced))
    else:
        response = await hybrid(backend, request, max_calls)
    calls = by_name_words(ground_numbers(list(response.tool_calls), said), said)
    return response.model_copy(update={"tool_calls": drop_redundant_calls(calls, said)})


# how each `--mode` answers a question (`tool-turns` with a budget of one call is a plain request)
ENGINE_ANSWERS = {"tool-turns": tool_turns, "calls-list": calls_list, "hybrid": hybrid, "gated": gated}
ENGINE_MODES = tuple(ENGINE_ANSWERS)
