"""vLLM in process: `AsyncLLM` on a GPU, with continuous batching and prefix caching.

    vllm:Qwen/Qwen2.5-7B-Instruct                     model string (the factory calls `from_model`)
    VLLMBackend.from_model("Qwen/Qwen2.5-7B-Instruct", max_model_len=8192, gpu_memory_utilization=0.85)

Every `generate` is one `AsyncLLM.generate` request; vLLM's scheduler puts all requests in flight
into one continuous batch, so N agents awaiting at once decode together with no batching code
here. Prefix caching is on: the system prompt and tool docs, shared by every step and agent, are
prefilled once. Prompts are rendered with the tokenizer's chat template.

Tool calls are decoded under a JSON schema (vLLM's `StructuredOutputsParams(json=...)`): one schema
whose `anyOf` holds one branch per tool (`{"name": const, "arguments": that tool's schema}`) and a
final-answer branch (`{"final_answer": string}`); with parallel calls allowed, a `{"tool_calls":
[...]}` branch too. One request per step (no separate "which tool" round) keeps every step in the
batch. The text is then read by parsing.py, which validates the arguments against the unsanitised
schema, so a call is never unparseable and a bad one becomes a parse_error.

vLLM needs a GPU and can't run in this project's CI: tests/vllm_standin.py implements the AsyncLLM
surface used here; benchmarks/vllm_smoke.py checks this backend against real vLLM. The engine's
output handler runs on the event loop of the first request: use one loop per backend (the async
API, or `Agent.run_many`), as with any vLLM AsyncLLM.
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from typing import Any

from toolkit.interop.openai_schema import to_openai_tools
from toolkit.models.base import BackendError, Capabilities
from toolkit.models.grammar import sanitize_schema
from toolkit.models.openai_payload import check_constraint
from toolkit.models.parsing import clean_text, parse_model_output
from toolkit.types import Constraint, LLMRequest, LLMResponse, Message, Timings, ToolSpec, Usage

# AsyncEngineArgs fields we set unless the caller does
ENGINE_DEFAULTS: dict[str, Any] = {"enable_prefix_caching": True, "disable_log_stats": True}
FINAL_ANSWER_BRANCH = {
    "type": "object",
    "properties": {"final_answer": {"type": "string"}},
    "required": ["final_answer"],
    "additionalProperties": False,
}
TOOL_FORMAT_HINT = (
    'Reply with one JSON object: {"name": TOOL, "arguments": {...}} to call a tool, '
    '{"tool_calls": [{"name": ..., "arguments": ...}, ...]} to call several at once, '
    'or {"final_answer": "..."} when you know the answer.'
)


def _import_vllm() -> tuple[Any, Any, Any, Any]:
    try:
        from vllm import AsyncEngineArgs, SamplingParams
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:
        raise BackendError(
            f"the vllm backend needs vLLM ({exc}); install it with `pip install toolkit[vllm]` on a machine with a "
            "supported GPU, or use openai:MODEL@URL against a `vllm serve` server"
        ) from None
    return AsyncEngineArgs, SamplingParams, StructuredOutputsParams, AsyncLLM


def tool_call_schema(tools: list[ToolSpec], tool_choice: str = "auto", parallel: bool = True) -> dict[str, Any]:
    """The JSON schema a step's output is decoded under: one branch per tool, plus the final
    answer (unless a call is required) and a batch of calls (if parallel calls are allowed)."""
    offered = (
        tools if tool_choice in ("auto", "required", "none") else [t for t in tools if t.name == tool_choice] or tools
    )
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": sanitize_schema(t.parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in offered
    ]
    branches = list(calls)
    if parallel and len(calls) > 0:
        branches.append(
            {
                "type": "object",
                "properties": {"tool_calls": {"type": "array", "items": {"anyOf": calls}, "minItems": 1}},
                "required": ["tool_calls"],
                "additionalProperties": False,
            }
        )
    if tool_choice == "auto":
        branches.append(FINAL_ANSWER_BRANCH)
    return {"anyOf": branches}


def _call_json(message: Message) -> str:
    calls = [{"name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    return json.dumps(calls[0] if len(calls) == 1 else {"tool_calls": calls}, ensure_ascii=False)


def chat_messages(request: LLMRequest, *, tool_role: str = "tool", format_hint: bool = True) -> list[dict[str, Any]]:
    """Our messages as the dicts chat templates take. Earlier calls are shown in the same JSON the
    model is constrained to, so the history reads like its own output."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "assistant" and m.tool_calls:
            content = (m.content.strip() + "\n" if m.content.strip() else "") + _call_json(m)
            out.append({"role": "assistant", "content": content})
        elif m.role == "tool":
            out.append({"role": tool_role, "content": m.content})
        else:
            out.append({"role": m.role, "content": m.content})
    if format_hint and request.tools and request.constraint is None and request.tool_choice != "none":
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + TOOL_FORMAT_HINT}
        else:
            out.insert(0, {"role": "system", "content": TOOL_FORMAT_HINT})
    return out


class VLLMBackend:
    name = "vllm"
    capabilities = Capabilities(constrained=True, native_tools=True, batching=True)

    def __init__(
        self,
        engine: Any,
        *,
        label: str = "",
        tokenizer: Any = None,
        template_tools: bool = False,
        tool_role: str = "tool",
        chat_template_kwargs: dict[str, Any] | None = None,
    ):
        """`engine`: a vLLM AsyncLLM. `template_tools`: also pass the tools to the chat template
        (for models trained on their template's tool format)."""
        self.engine = engine
        self.label = label
        self._tokenizer = tokenizer
        self.template_tools = template_tools
        self.tool_role = tool_role
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        _, self._SamplingParams, self._StructuredOutputsParams, _ = _import_vllm()

    @classmethod
    def from_model(cls, model: str, **options: Any) -> VLLMBackend:
        """Start an AsyncLLM for `model` (a hub id or a local directory). Options that are
        VLLMBackend's own (`template_tools`, `tool_role`, `chat_template_kwargs`) are taken out;
        the rest go to AsyncEngineArgs (`max_model_len`, `gpu_memory_utilization`, `dtype`,
        `tensor_parallel_size`, `quantization`, ...)."""
        if not model:
            raise BackendError("vllm model string must name a model: vllm:REPO/MODEL or vllm:/path/to/model")
        own = {k: options.pop(k) for k in ("template_tools", "tool_role", "chat_template_kwargs") if k in options}
        AsyncEngineArgs, _, _, AsyncLLM = _import_vllm()
        try:
            args = AsyncEngineArgs(model=model, **{**ENGINE_DEFAULTS, **options})
        except TypeError as exc:
            raise BackendError(f"vllm backend: bad engine option ({exc})") from None
        try:
            engine = AsyncLLM.from_engine_args(args)
        except Exception as exc:  # noqa: BLE001 - no GPU, out of memory, model not found ...
            raise BackendError(f"vLLM could not start {model}: {type(exc).__name__}: {str(exc)[:300]}") from None
        return cls(engine, label=model, **own)

    async def _get_tokenizer(self) -> Any:
        if self._tokenizer is None:
            tokenizer = self.engine.get_tokenizer()  # async in older vLLM releases, sync in newer
            self._tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer
        return self._tokenizer

    async def render_prompt(self, request: LLMRequest) -> str:
        tokenizer = await self._get_tokenizer()
        kwargs = dict(self.chat_template_kwargs)
        if self.template_tools and request.tools:
            kwargs["tools"] = to_openai_tools(request.tools)
        messages = chat_messages(request, tool_role=self.tool_role)
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 - templates raise on roles they don't know, etc.
            raise BackendError(
                f"the chat template of {self.label or 'the model'} failed: {type(exc).__name__}: {exc}"
            ) from None

    def _structured(self, request: LLMRequest) -> Any:
        c: Constraint | None = request.constraint
        if c is not None:
            if c.kind == "json_schema":
                return self._StructuredOutputsParams(json=c.json_schema or {})
            if c.kind == "choice":
                return self._StructuredOutputsParams(choice=list(c.choices or []))
            return self._StructuredOutputsParams(grammar=c.grammar or "")
        if request.tools and request.tool_choice != "none":
            schema = tool_call_schema(request.tools, request.tool_choice, request.parallel_tool_calls)
            return self._StructuredOutputsParams(json=schema)
        return None

    def sampling_params(self, request: LLMRequest) -> Any:
        s = request.sampling
        return self._SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=s.seed,
            stop=list(s.stop) or None,
            structured_outputs=self._structured(request),
        )

    async def generate(self, request: LLMRequest) -> LLMResponse:
        prompt = await self.render_prompt(request)
        params = self.sampling_params(request)
        started = time.perf_counter()
        ttft: float | None = None
        final = None
        try:
            async for output in self.engine.generate(prompt, params, f"toolkit-{uuid.uuid4().hex}"):
                if ttft is None and output.outputs and output.outputs[0].token_ids:
                    ttft = time.perf_counter() - started
                final = output
        except Exception as exc:  # noqa: BLE001 - EngineDeadError, validation errors ...
            raise BackendError(f"vLLM failed on a request: {type(exc).__name__}: {str(exc)[:300]}") from None
        total = time.perf_counter() - started
        if final is None or not final.outputs:
            return LLMResponse(
                finish_reason="error", parse_error="vLLM returned no output", timings=Timings(total_s=total)
            )
        completion = final.outputs[0]
        usage = Usage(
            prompt_tokens=len(final.prompt_token_ids or []),
            completion_tokens=len(completion.token_ids or []),
            cached_tokens=int(final.num_cached_tokens or 0),
        )
        timings = Timings(total_s=total, ttft_s=ttft)
        if ttft is not None and total > ttft and usage.completion_tokens > 1:
            timings.decode_tokens_per_s = (usage.completion_tokens - 1) / (total - ttft)
        return self._response(request, clean_text(completion.text), completion.finish_reason, usage, timings)

    def _response(self, request: LLMRequest, text: str, reason: Any, usage: Usage, timings: Timings) -> LLMResponse:
        finish = "length" if reason == "length" else "error" if reason == "abort" else "stop"
        if request.constraint is not None:
            text, error = check_constraint(text, request.constraint, "vllm")
            return LLMResponse(text=text, parse_error=error, finish_reason=finish, usage=usage, timings=timings)
        parsed = parse_model_output(text, request.tools, tool_choice=request.tool_choice)
        if parsed.calls:
            finish = "tool_calls"
        return parsed.to_response(finish_reason=finish, usage=usage, timings=timings)

    async def aclose(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
