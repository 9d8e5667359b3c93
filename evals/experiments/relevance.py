"""Lexical evidence about tool calls: does a request name one of the tools, and does a further call
in a list add anything the calls before it did not. An experiment, not the product path
(evals/experiments/__init__.py says why).

Tiny models judge both badly. On BFCL (200 questions a category), whether any offered function's
name shares two or more words with the question separates the categories that need a call from
`irrelevance` far better than SmolLM2-135M does: 65-88% of questions that need a call have such
a name, 5% of irrelevant ones; no word shared with any function's name or description: 58% of
irrelevant questions, at most 1.5% of the others. And given several functions, the model lists extra
calls to the other functions with the values it already used (`triangle_area_heron(3, 4, 5)` then
`triangle_area_base_height(3, 5)`).

Words are `toolkit.retrieval.tokenize`'s (identifiers split, stopwords dropped, light stemming);
two words match when equal or when both have 5+ letters and start alike (`convert`/`conversion`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from toolkit.retrieval import tokenize
from toolkit.types import ToolCall, ToolSpec

Relevance = Literal["named", "unrelated", "unclear"]
NAMED_MIN_WORDS = 2  # name words the request must share for "named"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def words_match(a: str, b: str) -> bool:
    return a == b or (len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5])


def shared_words(text: str, request_words: set[str]) -> int:
    """How many distinct words of `text` the request's words match."""
    return sum(any(words_match(w, r) for r in request_words) for w in set(tokenize(text)))


def named_tools(tools: list[ToolSpec], request: str) -> list[ToolSpec]:
    """The tools whose name shares NAMED_MIN_WORDS or more words with the request."""
    said = set(tokenize(request))
    return [t for t in tools if shared_words(t.name, said) >= NAMED_MIN_WORDS]


def relevance(tools: list[ToolSpec], request: str) -> Relevance:
    """`named`: some tool's name shares NAMED_MIN_WORDS words with the request; `unrelated`: no
    tool's name or description shares one; else `unclear` (the model decides)."""
    said = set(tokenize(request))
    if not tools:
        return "unrelated"
    if named_tools(tools, request):
        return "named"
    if all(shared_words(f"{t.name} {t.description}", said) == 0 for t in tools):
        return "unrelated"
    return "unclear"


def by_name_words(calls: list[ToolCall], request: str) -> list[ToolCall]:
    """The calls, those whose tool name shares more words with the request first (stable)."""
    said = set(tokenize(request))
    return sorted(calls, key=lambda c: -shared_words(c.name, said))


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif value is not None and not isinstance(value, bool):
        yield value


def _key(value: Any) -> float | str:
    """A value as compared: numbers by value, text without case or trailing punctuation."""
    return float(value) if isinstance(value, (int, float)) else str(value).strip().strip(",.;:").lower()


def in_request(value: Any, request: str) -> bool:
    """The value is written in the request: a number among its numbers (`1,000` is 1000), a
    string as whole words (case aside, trailing punctuation dropped)."""
    key = _key(value)
    if isinstance(key, float):
        return any(float(n) == key for n in _NUMBER.findall(request.replace(",", "")))
    return bool(key) and re.search(r"(?<!\w)" + re.escape(key) + r"(?!\w)", request.lower()) is not None


def drop_redundant_calls(calls: list[ToolCall], request: str) -> list[ToolCall]:
    """The calls, less every call after the first that uses no value from the request that the
    calls kept before it did not already use, and whose tool name adds no word the request says
    beyond the words of the kept calls' tool names and argument names.
    `circle.area(5)` then `circle.circumference(5)` for "area and circumference of a circle of
    radius 5" stays (the request says "circumference"); `solar_farm(...)` then `wind_farm(<same
    values>)` for a question about a solar farm loses the second, and so does
    `calculate_final_speed(<same values>)` after `calculate_displacement(initial_speed=20, ...)`
    for "the displacement of a car at an initial speed of 20 m/s": the request's "speed" is the
    first call's argument."""
    said = set(tokenize(request))
    kept: list[ToolCall] = []
    used: set[float | str] = set()
    covered: set[str] = set()  # words of the kept calls' tool names and argument names
    for call in calls:
        values = {_key(v) for v in _scalars(call.arguments) if in_request(v, request)}
        words = set(tokenize(call.name))
        if kept and not values - used and not any(words_match(w, s) for w in words - covered for s in said):
            continue
        kept.append(call)
        used |= values
        covered |= words | set(tokenize(" ".join(call.arguments)))
    return kept


__all__ = [
    "Relevance",
    "relevance",
    "named_tools",
    "by_name_words",
    "drop_redundant_calls",
    "in_request",
    "shared_words",
    "words_match",
]
