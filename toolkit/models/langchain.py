"""Any LangChain chat model (a langchain-core `BaseChatModel`) as a backend.

    langchain:my_models:chat                 model string: `module:attr`, an instance or a factory
    LangChainBackend(ChatOpenAI(model=...))  or any BaseChatModel you built

Tools are bound with the model's own `bind_tools` (OpenAI-format schemas, names made OpenAI-safe
and mapped back), so the provider's native tool calling is used; a model without `bind_tools`
gets the tool list in its prompt and its text goes through parsing.py. Either way each call is
validated against its schema, and calls LangChain could not parse (`invalid_tool_calls`) become a
parse_error. Usage comes from `usage_metadata`. Constraints are not pushed into the model
(providers differ); the output is validated against them instead.
"""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

from toolkit.interop.openai_schema import name_map, to_openai_name, to_openai_tools
from toolkit.models.base import BackendError, Capabilities
from toolkit.models.openai_payload import check_constraint
from toolkit.models.parsing import clean_text, parse_model_output, parse_native_calls
from toolkit.types import LLMRequest, LLMResponse, Message, Timings, ToolCall, Usage, new_id


def _lc() -> Any:
    try:
        import langchain_core.messages as messages
    except ImportError:
        raise BackendError("the langchain backend needs langchain-core: pip install toolkit[langchain]") from None
    return messages


def to_langchain_messages(messages: list[Message]) -> list[Any]:
    """Our messages -> LangChain's (tool names in calls made OpenAI-safe, as bound)."""
    lc = _lc()
    out: list[Any] = []
    for m in messages:
        if m.role == "system":
            out.append(lc.SystemMessage(content=m.content))
        elif m.role == "user":
            out.append(lc.HumanMessage(content=m.content))
        elif m.role == "assistant":
            calls = [
                {"name": to_openai_name(c.name), "args": c.arguments, "id": c.id, "type": "tool_call"}
                for c in m.tool_calls
            ]
            out.append(lc.AIMessage(content=m.content, tool_calls=calls))
        elif m.tool_call_id:
            out.append(lc.ToolMessage(content=m.content, tool_call_id=m.tool_call_id, name=m.name))
        else:  # a tool result with no call to answer: providers reject it, so show it as user text
            out.append(lc.HumanMessage(content=m.content))
    return out


def message_text(content: Any) -> str:
    """LangChain content is a string or a list of blocks; keep the text blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def from_langchain_messages(messages: list[Any], aliases: dict[str, str] | None = None) -> list[Message]:
    """LangChain messages -> ours (e.g. to continue a LangChain conversation with an Agent)."""
    aliases = aliases or {}
    out: list[Message] = []
    for m in messages:
        kind = getattr(m, "type", "")
        text = message_text(getattr(m, "content", ""))
        if kind == "system":
            out.append(Message(role="system", content=text))
        elif kind == "human":
            out.append(Message(role="user", content=text))
        elif kind in ("ai", "AIMessageChunk"):
            calls = [
                ToolCall(
                    id=c.get("id") or new_id(), name=aliases.get(c["name"], c["name"]), arguments=c.get("args") or {}
                )
                for c in getattr(m, "tool_calls", []) or []
            ]
            out.append(Message(role="assistant", content=text, tool_calls=calls))
        elif kind == "tool":
            name = getattr(m, "name", None)
            out.append(
                Message(
                    role="tool",
                    content=text,
                    tool_call_id=m.tool_call_id,
                    name=aliases.get(name, name) if name else None,
                )
            )
        else:
            out.append(Message(role="user", content=text))
    return out


def _usage(ai: Any) -> Usage:
    meta = getattr(ai, "usage_metadata", None) or {}
    details = meta.get("input_token_details") or {}
    return Usage(
        prompt_tokens=int(meta.get("input_tokens") or 0),
        completion_tokens=int(meta.get("output_tokens") or 0),
        cached_tokens=int(details.get("cache_read") or 0),
    )


class LangChainBackend:
    name = "langchain"

    def __init__(self, model: Any, *, label: str = "", tool_choice_kwarg: bool = True):
        """`model`: a langchain-core BaseChatModel. `tool_choice_kwarg=False` for models whose
        `bind_tools` takes no `tool_choice`."""
        try:
            from langchain_core.language_models import BaseChatModel
        except ImportError:
            raise BackendError("the langchain backend needs langchain-core: pip install toolkit[langchain]") from None
        if not isinstance(model, BaseChatModel):
            raise BackendError(
                f"the langchain backend needs a langchain-core BaseChatModel, got {type(model).__name__}"
            )
        self.model = model
        self.label = label or type(model).__name__
        self.tool_choice_kwarg = tool_choice_kwarg
        self.native_tools = type(model).bind_tools is not BaseChatModel.bind_tools
        self.capabilities = Capabilities(native_tools=self.native_tools)

    @classmethod
    def from_target(cls, target: str, **options: Any) -> LangChainBackend:
        """`module:attr`: a BaseChatModel instance, or a callable returning one (called with the
        options that are not LangChainBackend's own)."""
        module_name, sep, attr = target.partition(":")
        if not sep or not module_name or not attr:
            raise BackendError(f"langchain model string must be langchain:MODULE:ATTRIBUTE, got langchain:{target}")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"langchain:{target}: {type(exc).__name__}: {exc}") from None
        own = {k: options.pop(k) for k in ("label", "tool_choice_kwarg") if k in options}
        from langchain_core.language_models import BaseChatModel

        if not isinstance(obj, BaseChatModel) and callable(obj):
            try:
                obj = obj(**options)
            except Exception as exc:  # noqa: BLE001 - the user's factory failed
                raise BackendError(
                    f"langchain:{target}: building the model failed: {type(exc).__name__}: {exc}"
                ) from None
        return cls(obj, **{"label": target, **own})

    def _bound(self, request: LLMRequest) -> Any:
        if not (request.tools and self.native_tools and request.tool_choice != "none" and request.constraint is None):
            return self.model
        tools = to_openai_tools(request.tools)
        choice = request.tool_choice
        kwargs: dict[str, Any] = {}
        if self.tool_choice_kwarg and choice != "auto":
            kwargs["tool_choice"] = choice if choice in ("required", "none") else to_openai_name(choice)
        try:
            return self.model.bind_tools(tools, **kwargs)
        except TypeError:
            return self.model.bind_tools(tools)

    def _messages(self, request: LLMRequest) -> list[Any]:
        messages = list(request.messages)
        if request.tools and not self.native_tools and request.tool_choice != "none" and request.constraint is None:
            hint = (
                'To call a tool reply with only {"name": TOOL, "arguments": {...}}; to answer, reply in plain text.\n'
                "Tools: " + json.dumps(to_openai_tools(request.tools), ensure_ascii=False)
            )
            messages.insert(0, Message(role="system", content=hint))
        return to_langchain_messages(messages)

    async def generate(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        stop = list(request.sampling.stop) or None
        try:
            ai = await self._bound(request).ainvoke(self._messages(request), stop=stop)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - provider errors of every kind
            raise BackendError(f"{self.label} failed: {type(exc).__name__}: {str(exc)[:300]}") from None
        timings = Timings(total_s=time.perf_counter() - started)
        usage = _usage(ai)
        if usage.completion_tokens and timings.total_s > 0:
            timings.decode_tokens_per_s = usage.completion_tokens / timings.total_s  # a lower bound: includes prefill
        text = clean_text(message_text(getattr(ai, "content", "")))
        reason = (getattr(ai, "response_metadata", None) or {}).get("finish_reason")
        finish = "length" if reason in ("length", "max_tokens") else "stop"
        if request.constraint is not None:
            text, error = check_constraint(text, request.constraint, "vllm")  # raw choice text, like vLLM
            return LLMResponse(text=text, parse_error=error, finish_reason=finish, usage=usage, timings=timings)
        aliases = name_map(request.tools)
        invalid = getattr(ai, "invalid_tool_calls", None) or []
        calls = getattr(ai, "tool_calls", None) or []
        if invalid:
            why = "; ".join(
                f"{c.get('name')}: {c.get('error') or 'unparseable arguments'} ({str(c.get('args'))[:80]!r})"
                for c in invalid
            )
            parsed_error = f"tool calls could not be parsed: {why}"
            return LLMResponse(text=text, parse_error=parsed_error, finish_reason=finish, usage=usage, timings=timings)
        if calls:
            parsed = parse_native_calls(calls, request.tools, text=text, aliases=aliases)
        else:
            parsed = parse_model_output(text, request.tools, tool_choice=request.tool_choice, aliases=aliases)
        return parsed.to_response(finish_reason="tool_calls" if parsed.calls else finish, usage=usage, timings=timings)

    async def aclose(self) -> None:
        return None
