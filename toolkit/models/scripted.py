"""A backend that replays a file of model responses: deterministic, for tests and benchmarks.

File format (YAML or JSON; a `.jsonl` file is a list, one response a line):

    # a plain list: the reply to a request is the entry at its turn, the number of assistant
    # messages already in the conversation, so concurrent tasks each get the whole script
    - tool_calls: [{name: math.calculate, arguments: {expression: "2+2"}}]
    - text: "The answer is 4."

    # or scripts chosen by a regular expression on the task (the first user message)
    mode: turn            # or `sequence`: one cursor per script, advanced by every request
    scripts:
      - match: "weather"
        responses: [...]
    default: [...]        # used when no script matches

A response may also carry `delay_s` (sleep before answering, to stand in for decoding time) and
`usage` ({prompt_tokens, completion_tokens}). Past the end of a script the last response repeats.

A script may also carry `match_last`: a regular expression that the request's last message must
match as well (e.g. to answer a planner's joiner prompt differently from its planning prompt).

`stream(request)` yields a response's text in chunks of `chunk_chars` characters (default 16),
sleeping `chunk_delay_s` before each, then one LLMResponse with the whole text and usage: it
stands in for a model decoding a long output (a plan) token by token. `generate` takes as long
(it sleeps `delay_s` plus every chunk's delay) and returns the whole text at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from toolkit.models.base import BackendError, Capabilities
from toolkit.types import LLMRequest, LLMResponse, Timings, ToolCall, Usage


class ScriptedResponse(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    delay_s: float = 0.0
    usage: Usage | None = None
    chunk_chars: int = Field(default=16, ge=1)  # stream(): characters per chunk
    chunk_delay_s: float = 0.0  # stream(): sleep before each chunk
    parse_error: str | None = None  # stands in for a model output that could not become calls


class Script(BaseModel):
    match: str | None = None
    match_last: str | None = None  # also required of the last message's content, when given
    responses: list[ScriptedResponse]


class ScriptFile(BaseModel):
    mode: Literal["turn", "sequence"] = "turn"
    scripts: list[Script] = Field(default_factory=list)
    default: list[ScriptedResponse] = Field(default_factory=list)


def _parse(data: Any) -> ScriptFile:
    if isinstance(data, list):
        return ScriptFile(default=[ScriptedResponse.model_validate(r) for r in data])
    return ScriptFile.model_validate(data)


class ScriptedBackend:
    """Replays responses. Not a model: it ignores tools and constraints, returning what it was given."""

    name = "scripted"
    capabilities = Capabilities(native_tools=True)

    def __init__(self, script: ScriptFile | list[dict[str, Any]] | list[ScriptedResponse]):
        self.script = (
            script
            if isinstance(script, ScriptFile)
            else _parse([r.model_dump() if isinstance(r, ScriptedResponse) else r for r in script])
        )
        if not self.script.scripts and not self.script.default:
            raise BackendError("scripted backend: the script holds no responses")
        self._patterns = [
            (re.compile(s.match or ".*", re.S), re.compile(s.match_last, re.S) if s.match_last else None, s)
            for s in self.script.scripts
        ]
        self._cursors: dict[int, int] = {}
        self.requests: list[LLMRequest] = []  # what was asked, for tests that inspect prompts
        self.record_requests = False

    @classmethod
    def from_file(cls, path: str) -> ScriptedBackend:
        p = Path(path)
        if not p.is_file():
            raise BackendError(f"scripted backend: no such file {path!r}")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix == ".jsonl":
                data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                data = yaml.safe_load(text)
            return cls(_parse(data))
        except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
            raise BackendError(f"scripted backend: {path}: {exc}") from None

    def _responses_for(self, request: LLMRequest) -> list[ScriptedResponse]:
        task = next((m.content for m in request.messages if m.role == "user"), "")
        last = request.messages[-1].content if request.messages else ""
        for pattern, last_pattern, script in self._patterns:
            if pattern.search(task) and (last_pattern is None or last_pattern.search(last)):
                return script.responses
        if not self.script.default:
            raise BackendError(f"scripted backend: no script matches the task {task[:80]!r}")
        return self.script.default

    def _next_reply(self, request: LLMRequest) -> ScriptedResponse:
        if self.record_requests:
            self.requests.append(request)
        responses = self._responses_for(request)
        if self.script.mode == "sequence":
            index = self._cursors.get(id(responses), 0)
            self._cursors[id(responses)] = index + 1
        else:
            index = sum(1 for m in request.messages if m.role == "assistant")
        return responses[min(index, len(responses) - 1)]

    async def generate(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        reply = self._next_reply(request)
        # the whole text takes as long as streaming it would: chunk delays count here too
        chunks = -(-len(reply.text) // reply.chunk_chars)
        if reply.delay_s or reply.chunk_delay_s:
            await asyncio.sleep(reply.delay_s + chunks * reply.chunk_delay_s)
        return self._response(request, reply, started)

    async def stream(self, request: LLMRequest) -> AsyncGenerator[str | LLMResponse, bool | None]:
        started = time.perf_counter()
        reply = self._next_reply(request)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        first: float | None = None
        paced_from = time.perf_counter()
        for i, start in enumerate(range(0, len(reply.text), reply.chunk_chars)):
            if reply.chunk_delay_s:
                # chunks are due on a fixed schedule (a steady decoding rate): a late wake-up
                # under load does not push every later chunk back
                await asyncio.sleep(max(0.0, paced_from + (i + 1) * reply.chunk_delay_s - time.perf_counter()))
            first = first if first is not None else time.perf_counter() - started
            yield reply.text[start : start + reply.chunk_chars]
        response = self._response(request, reply, started)
        response.timings.ttft_s = first
        yield response

    def _response(self, request: LLMRequest, reply: ScriptedResponse, started: float) -> LLMResponse:
        calls = [ToolCall(name=c.name, arguments=c.arguments) for c in reply.tool_calls]  # fresh ids per use
        usage = reply.usage or Usage(
            prompt_tokens=sum(len(m.content) // 4 + 1 for m in request.messages),
            completion_tokens=len(reply.text) // 4 + 4 * len(calls) + 1,
        )
        return LLMResponse(
            text=reply.text,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else "stop",
            usage=usage,
            parse_error=reply.parse_error,
            timings=Timings(total_s=time.perf_counter() - started),
        )

    async def aclose(self) -> None:
        return None
