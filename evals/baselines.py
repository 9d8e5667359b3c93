"""The baselines every eval runs beside the engine, each behind the Backend protocol.

- `ChatmlFunctionCallingBaseline`: the same GGUF model through llama-cpp-python's own tool calling
  (`chat_format="chatml-function-calling"`, `create_chat_completion(tools=..., tool_choice="auto")`),
  i.e. what a user gets from llama-cpp-python without this engine.
- `RawPromptBaseline`: for models that are not GGUF files here (openai:, vllm:, scripted:...): the
  tools described in a plain prompt, the model's reply unconstrained, read by
  `toolkit.models.parsing`.
- `make_baseline(model, backend)` picks the one that fits the model string;
  `engine_and_baseline(model, side_by_side)` loads the engine's backend and that baseline, with
  the cores split between their llama.cpp contexts when the two are to run at the same time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, cast

from toolkit.models.base import Backend, Capabilities
from toolkit.models.factory import load_backend, parse_model_string
from toolkit.types import LLMRequest, LLMResponse, Message, Timings, ToolCall, ToolSpec, Usage

CHATML_LABEL = "llama-cpp chatml-function-calling"
RAW_LABEL = "raw prompt (no constraint)"


def _openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    # names as they are (dots included): llama-cpp-python puts them in its grammar literally
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def _chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if m.role == "tool":  # chatml-function-calling has no tool role: show results as user text
            out.append({"role": "user", "content": f"Result of {m.name or 'the tool'}: {m.content}"})
        elif m.role == "assistant" and m.tool_calls:
            calls = "; ".join(f"{c.name}({json.dumps(c.arguments)})" for c in m.tool_calls)
            out.append({"role": "assistant", "content": (m.content + "\n" if m.content else "") + f"Called: {calls}"})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


class BaselineCutOff(Exception):
    pass


class _EvalBudget:
    """Stops a chatml-function-calling request that runs past a time or token limit.

    The handler chains several grammar-constrained completions per request and passes
    `max_tokens=None` to those that write calls, so the request's max_tokens is ignored, and on
    some BFCL schemas one ran for over 15 minutes. llama-cpp-python has no timeout, and an
    exception raised in a logits processor is swallowed by the C sampler callback; but its
    generate loop calls `Llama.eval` (Python) once per token, so a wrapper on the instance's
    `eval` that raises stops the chain cleanly (no token is evaluated, the cache stays valid).
    """

    def __init__(self, llm: Any):
        self.original = llm.eval
        self.deadline = float("inf")
        self.tokens_left = 0
        llm.eval = self.eval

    def start(self, timeout_s: float, max_tokens: int) -> None:
        self.deadline = time.perf_counter() + timeout_s
        self.tokens_left = max_tokens

    def eval(self, tokens: Any) -> None:
        if time.perf_counter() > self.deadline:
            raise BaselineCutOff("the baseline ran past its time limit")
        if len(tokens) == 1:  # one token at a time: generation (prompts are evaluated in chunks)
            self.tokens_left -= 1
            if self.tokens_left < 0:
                raise BaselineCutOff("the baseline ran past its token limit")
        self.original(tokens)


class ChatmlFunctionCallingBaseline:
    """llama-cpp-python's built-in grammar-constrained tool calling on a GGUF file."""

    name = CHATML_LABEL
    capabilities = Capabilities(constrained=True, native_tools=True)

    def __init__(
        self,
        model_path: str,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        timeout_s: float = 120.0,
        token_factor: int = 1,
    ):
        from llama_cpp import Llama  # only this baseline needs llama-cpp-python

        self.model_path = model_path
        self.timeout_s = timeout_s
        # generated tokens per request, over the handler's whole chain: factor x max_tokens. 1: the
        # engine's budget for the same request; the questions that reach it are ones where the
        # model repeats itself (a 2x budget only made those take twice as long, none came right)
        self.token_factor = token_factor
        self.llm = Llama(
            model_path=model_path,
            chat_format="chatml-function-calling",
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count(),  # llama-cpp-python's default is half the cores; the engine uses all
            seed=seed,
            verbose=False,
        )
        self._budget = _EvalBudget(self.llm)
        self._lock = asyncio.Lock()  # one llama context: one request at a time

    def _complete(self, request: LLMRequest) -> dict[str, Any]:
        options: dict[str, Any] = {
            "messages": _chat_messages(request.messages),
            "temperature": request.sampling.temperature,
            "max_tokens": request.sampling.max_tokens,
        }
        if request.tools and request.tool_choice != "none":
            options["tools"] = _openai_tools(request.tools)
            options["tool_choice"] = "auto"
        self._budget.start(self.timeout_s, self.token_factor * request.sampling.max_tokens)
        return cast(dict[str, Any], self.llm.create_chat_completion(**options))  # not streamed: one dict

    async def generate(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        async with self._lock:
            try:
                completion = await asyncio.to_thread(self._complete, request)
            except BaselineCutOff as exc:
                return LLMResponse(
                    finish_reason="error", parse_error=str(exc), timings=Timings(total_s=time.perf_counter() - started)
                )
            except Exception as exc:  # noqa: BLE001 - a failed generation is a scored failure, not a crash
                return LLMResponse(finish_reason="error", parse_error=f"{type(exc).__name__}: {exc}")
        message = completion["choices"][0]["message"]
        usage = completion.get("usage") or {}
        calls: list[ToolCall] = []
        error = None
        for raw in message.get("tool_calls") or []:
            function = raw.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
                if not isinstance(arguments, dict):
                    raise ValueError("arguments are not an object")
            except ValueError as exc:
                error = f"unreadable arguments for {function.get('name')}: {exc}"
                continue
            calls.append(ToolCall(name=function.get("name", ""), arguments=arguments))
        return LLMResponse(
            text=message.get("content") or "",
            tool_calls=[] if error else calls,
            finish_reason="tool_calls" if calls and not error else "stop",
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0)
            ),
            timings=Timings(total_s=time.perf_counter() - started),
            parse_error=error,
        )

    async def aclose(self) -> None:
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()


RAW_TOOL_PROMPT = """You can call these functions:
{tools}

To call functions, reply with a JSON list only: [{{"name": "<function>", "arguments": {{...}}}}, ...].
If none of the functions fits the request, reply in plain words without JSON."""


class RawPromptBaseline:
    """The model prompted with the tools in plain text, no constraint; output parsed afterwards."""

    name = RAW_LABEL
    capabilities = Capabilities()

    def __init__(self, backend: Backend):
        self.backend = backend

    async def generate(self, request: LLMRequest) -> LLMResponse:
        from toolkit.models.parsing import parse_model_output

        messages = list(request.messages)
        if request.tools and request.tool_choice != "none":
            described = "\n".join(
                json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters})
                for t in request.tools
            )
            messages.insert(0, Message(role="system", content=RAW_TOOL_PROMPT.format(tools=described)))
        plain = request.model_copy(
            update={"messages": messages, "tools": [], "constraint": None, "tool_choice": "none"}
        )
        response = await self.backend.generate(plain)
        if response.tool_calls or not request.tools:  # a backend that parsed calls itself (scripted)
            return response
        parsed = parse_model_output(response.text, request.tools, tool_choice="auto")
        return response.model_copy(
            update={"text": parsed.text, "tool_calls": parsed.calls, "parse_error": parsed.error}
        )

    async def aclose(self) -> None:
        return None  # the wrapped backend is the engine's: its owner closes it


GGUF_KINDS = ("llamacpp", "hf")  # model strings that name a GGUF file run by llama.cpp here


def gguf_path(model: str | None) -> str | None:
    """The GGUF file behind a `llamacpp:`/`hf:` model string (None for other kinds)."""
    kind, target = parse_model_string(model)
    if kind not in GGUF_KINDS:
        return None
    from toolkit.models.llamacpp.files import resolve_model

    return str(resolve_model(kind, target).path)


def make_baseline(model: str | None, backend: Backend, n_threads: int = 0) -> Backend:
    """`n_threads`: the baseline's llama.cpp threads when it has its own context (0: all cores)."""
    path = gguf_path(model)
    if path is not None:
        return ChatmlFunctionCallingBaseline(path, n_threads=n_threads or None)
    return RawPromptBaseline(backend)


def split_cores() -> tuple[int, int]:
    """llama.cpp threads for the engine and for the baseline when both run at the same time.

    Half the cores each. On the 2-vCPU machines we develop on, one BFCL category took 125-130 s
    with the two side by side on one thread each, and 231 s one after the other on two threads
    each: a llama.cpp context's threads wait for each other at every operation, and a context on
    one thread was as fast as on two (the two vCPUs share a core's throughput).
    """
    cores = os.cpu_count() or 1
    engine = max(1, cores // 2)
    return engine, max(1, cores - engine)


def engine_and_baseline(
    model: str | None, side_by_side: bool, engine: Backend | None = None, baseline: Backend | None = None
) -> tuple[Backend, Backend]:
    """The engine's backend and its baseline for `model`, loading whichever was not given.

    `side_by_side`: the two will answer at the same time, so a GGUF model's two llama.cpp contexts
    get half the cores each (split_cores) instead of each taking all of them.
    """
    engine_threads, baseline_threads = split_cores() if side_by_side else (0, 0)
    if engine is None:
        # only llama.cpp backends take a thread count; the kind is enough to tell (no need to
        # resolve the model file here: the backend does)
        local = parse_model_string(model)[0] in GGUF_KINDS
        engine = load_backend(model, n_threads=engine_threads) if local else load_backend(model)
    if baseline is None:
        baseline = make_baseline(model, engine, baseline_threads)
    return engine, baseline
