"""The OpenAI chat-completions wire format: an LLMRequest -> a request body, and a response body
(or a stream of SSE chunks) -> an LLMResponse. No I/O here; `openai.py` does the HTTP.

Servers differ in how they take a constraint, so `server` picks the dialect:

    openai    `response_format: {type: json_schema, json_schema: {name, schema, strict}}`;
              a choice becomes a one-field object schema whose value is unwrapped again;
              a grammar can't be sent (the output is returned unchecked)
    vllm      the `structured_outputs` extra body field: `{"json": schema}`, `{"choice": [...]}`,
              `{"grammar": gbnf}` (vLLM's own OpenAI server)
    llamacpp  llama-cpp-python's server: `response_format: {type: json_object, schema}` and a
              choice as an enum schema; a GBNF grammar as its `grammar` field

Calls a server didn't parse (left in `content`) go through parsing.py, and structured output that
a server couldn't enforce is validated against the schema, so a bad one is a parse_error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema.exceptions import best_match

from toolkit.interop.openai_schema import name_map, to_openai_name, to_openai_tools
from toolkit.models.parsing import clean_text, parse_model_output, parse_native_calls
from toolkit.schema_validation import schema_validator, validation_errors
from toolkit.types import Constraint, LLMRequest, LLMResponse, Message, Timings, Usage

Server = Literal["openai", "vllm", "llamacpp"]
SERVERS = ("openai", "vllm", "llamacpp")
CHOICE_FIELD = "choice"


def message_to_openai(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        if m.tool_call_id:
            return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
        return {"role": "user", "content": m.content}  # a tool message without a call id is orphaned
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        # "" rather than null: OpenAI and vLLM take either, llama-cpp-python's server only a string
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": to_openai_name(c.name), "arguments": json.dumps(c.arguments, ensure_ascii=False)},
            }
            for c in m.tool_calls
        ]
    return out


def _choice_schema(choices: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {CHOICE_FIELD: {"type": "string", "enum": choices}},
        "required": [CHOICE_FIELD],
        "additionalProperties": False,
    }


def constraint_fields(constraint: Constraint, server: Server) -> dict[str, Any]:
    """The body fields that ask `server` to enforce `constraint` while decoding."""
    if server == "vllm":
        if constraint.kind == "json_schema":
            return {"structured_outputs": {"json": constraint.json_schema or {}}}
        if constraint.kind == "choice":
            return {"structured_outputs": {"choice": list(constraint.choices or [])}}
        return {"structured_outputs": {"grammar": constraint.grammar or ""}}
    if server == "llamacpp":
        if constraint.kind == "grammar":
            return {"grammar": constraint.grammar or ""}
        schema = (
            constraint.json_schema
            if constraint.kind == "json_schema"
            else _choice_schema(list(constraint.choices or []))
        )
        return {"response_format": {"type": "json_object", "schema": schema or {}}}
    if constraint.kind == "grammar":
        return {}  # OpenAI has no grammars: the caller gets unchecked text
    schema = (
        constraint.json_schema if constraint.kind == "json_schema" else _choice_schema(list(constraint.choices or []))
    )
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema or {}, "strict": False},
        }
    }


def build_body(
    request: LLMRequest, model: str, server: Server, *, stream: bool, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    s = request.sampling
    body: dict[str, Any] = {
        "model": model,
        "messages": [message_to_openai(m) for m in request.messages],
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
    }
    if s.seed is not None:
        body["seed"] = s.seed
    if s.stop:
        body["stop"] = s.stop
    if request.tools and request.constraint is None:
        body["tools"] = to_openai_tools(request.tools)
        choice = request.tool_choice
        if choice in ("auto", "required", "none"):
            body["tool_choice"] = choice
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": to_openai_name(choice)}}
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.constraint is not None:
        body.update(constraint_fields(request.constraint, server))
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if extra:
        body.update(extra)
    return body


# --- response -> LLMResponse ----------------------------------------------------------------


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details")
    return Usage(
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
        cached_tokens=_count(details.get("cached_tokens")) if isinstance(details, dict) else 0,
    )


def _finish(reason: Any, has_calls: bool) -> Literal["stop", "length", "tool_calls", "error"]:
    if has_calls:
        return "tool_calls"
    return "length" if reason == "length" else "stop"


def check_constraint(text: str, constraint: Constraint, server: Server) -> tuple[str, str | None]:
    """(text, parse_error): unwrap an object-wrapped choice; validate what the server may not enforce."""
    if constraint.kind == "grammar":
        return text, None
    if constraint.kind == "choice" and server == "vllm":
        choices = constraint.choices or []
        return (text, None) if text in choices else (text, f"expected one of {choices}, got {text[:80]!r}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return text, f"the output is not valid JSON ({str(exc)[:120]})"
    if constraint.kind == "choice":
        choice = value.get(CHOICE_FIELD) if isinstance(value, dict) else value
        if choice in (constraint.choices or []):
            return str(choice), None
        return text, f"expected one of {constraint.choices}, got {text[:80]!r}"
    try:
        validator = schema_validator(constraint.json_schema or {})
    except Exception as exc:  # noqa: BLE001 - a broken schema
        return text, f"the output could not be checked against the schema ({type(exc).__name__})"
    error = best_match(validation_errors(validator, value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        return text, f"the output doesn't match the schema at {where}: {error.message[:300]}"
    return text, None


def to_response(
    request: LLMRequest,
    server: Server,
    content: Any,
    raw_calls: list[Any],
    finish_reason: Any,
    usage: Usage,
    timings: Timings,
) -> LLMResponse:
    """Assemble the LLMResponse from a message's content and tool calls (from a body or a stream)."""
    text = clean_text(content or "")
    fields: dict[str, Any] = {"usage": usage, "timings": timings}
    if request.constraint is not None:
        text, error = check_constraint(text, request.constraint, server)
        return LLMResponse(text=text, parse_error=error, finish_reason=_finish(finish_reason, False), **fields)
    aliases = name_map(request.tools)
    if raw_calls:
        parsed = parse_native_calls(raw_calls, request.tools, text=text, aliases=aliases)
    else:  # servers without a tool parser leave the call in the content
        parsed = parse_model_output(text, request.tools, tool_choice=request.tool_choice, aliases=aliases)
    return parsed.to_response(finish_reason=_finish(finish_reason, bool(parsed.calls)), **fields)


def response_from_body(request: LLMRequest, server: Server, body: Any, timings: Timings) -> LLMResponse:
    """A chat-completion body -> LLMResponse; a body of the wrong shape is a parse_error, not a crash."""
    try:
        return _response_from_body(request, server, body, timings)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        return LLMResponse(
            finish_reason="error",
            parse_error=f"the server's reply has an unexpected shape ({type(exc).__name__}: {str(exc)[:120]})",
            timings=timings,
        )


def _response_from_body(request: LLMRequest, server: Server, body: Any, timings: Timings) -> LLMResponse:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return LLMResponse(
            finish_reason="error", parse_error=f"the server's reply has no choices: {str(body)[:200]}", timings=timings
        )
    message = choices[0].get("message") or {}
    usage = _usage(body.get("usage"))
    server_timings = body.get("timings")  # llama.cpp's own server reports prefill and decode speed
    if isinstance(server_timings, dict):
        prompt_ms, per_second = server_timings.get("prompt_ms"), server_timings.get("predicted_per_second")
        if isinstance(prompt_ms, (int, float)) and prompt_ms > 0:
            timings.prefill_s = prompt_ms / 1000
        if isinstance(per_second, (int, float)) and per_second > 0:
            timings.decode_tokens_per_s = float(per_second)
    elif usage.completion_tokens and timings.total_s > 0:
        timings.decode_tokens_per_s = usage.completion_tokens / timings.total_s  # a lower bound: includes prefill
    calls = message.get("tool_calls") or []
    if not calls and isinstance(message.get("function_call"), dict):  # the legacy single-call field
        calls = [{"function": message["function_call"]}]
    return to_response(request, server, message.get("content"), calls, choices[0].get("finish_reason"), usage, timings)


@dataclass
class StreamAssembler:
    """Accumulates SSE chunks: content deltas appended, tool-call deltas merged by index."""

    content: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: Any = None
    usage: Usage | None = None
    chunks_with_tokens: int = 0

    def add(self, chunk: dict[str, Any]) -> bool:
        """Take one decoded chunk; True when it carried generated tokens (for time to first token).
        A chunk of the wrong shape is skipped."""
        try:
            return self._add(chunk)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError):
            return False

    def _add(self, chunk: dict[str, Any]) -> bool:
        if isinstance(chunk.get("usage"), dict):
            self.usage = _usage(chunk["usage"])
        got_tokens = False
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if isinstance(delta.get("content"), str) and delta["content"]:
                self.content.append(delta["content"])
                got_tokens = True
            for d in delta.get("tool_calls") or []:
                got_tokens = True
                slot = self.calls.setdefault(
                    int(d.get("index") or 0), {"id": None, "function": {"name": "", "arguments": ""}}
                )
                if d.get("id"):
                    slot["id"] = d["id"]
                fn = d.get("function") or {}
                name, have = fn.get("name") or "", slot["function"]["name"]
                # OpenAI and vLLM send the name once; llama-cpp-python repeats it in every delta;
                # a few servers send it in pieces
                if name and not have.endswith(name):
                    slot["function"]["name"] = name if name.startswith(have) else have + name
                if fn.get("arguments"):
                    slot["function"]["arguments"] += fn["arguments"]
        self.chunks_with_tokens += got_tokens
        return got_tokens

    def response(self, request: LLMRequest, server: Server, timings: Timings) -> LLMResponse:
        # without a usage chunk, count chunks: servers send about one token per chunk
        usage = self.usage or Usage(completion_tokens=self.chunks_with_tokens)
        if usage.completion_tokens and timings.ttft_s is not None and timings.total_s > timings.ttft_s:
            timings.decode_tokens_per_s = max(usage.completion_tokens - 1, 1) / (timings.total_s - timings.ttft_s)
        calls = [{k: v for k, v in slot.items() if k != "id" or v} for _, slot in sorted(self.calls.items())]
        return to_response(request, server, "".join(self.content), calls, self.finish_reason, usage, timings)
