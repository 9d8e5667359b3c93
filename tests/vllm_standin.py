"""A STAND-IN for vLLM, which needs a GPU and can't run here. Not vLLM, and no model inside.

It implements exactly the surface `toolkit/models/vllm.py` uses, with vLLM's names, call
signatures and output shapes (checked against vLLM's sources: `vllm/v1/engine/async_llm.py`,
`vllm/sampling_params.py`, `vllm/outputs.py`):

    vllm.AsyncEngineArgs(model=..., enable_prefix_caching=..., ...)   unknown fields -> TypeError
    vllm.SamplingParams(temperature, top_p, max_tokens, seed, stop, structured_outputs, ...)
    vllm.sampling_params.StructuredOutputsParams(json= | choice= | grammar= ...)  exactly one
    vllm.v1.engine.async_llm.AsyncLLM.from_engine_args(args)
        .get_tokenizer()  -> a tokenizer with apply_chat_template (ChatML, rendered by jinja2)
        .generate(prompt, sampling_params, request_id)  async generator of cumulative
            RequestOutput(request_id, prompt, prompt_token_ids, prompt_logprobs, outputs=
            [CompletionOutput(index, text, token_ids, cumulative_logprob, logprobs, finish_reason,
            stop_reason)], finished, num_cached_tokens); the last one has finished=True
        .abort(request_id), .shutdown()

What it does instead of a model: the text of each request comes from `AsyncLLM.responder(prompt,
params)` (tests set it; the default writes the smallest output that satisfies the request's
structured-output constraint, as a constrained decoder would be forced to). A scripted text that
violates the constraint raises, since real vLLM could never emit it. A background "engine loop"
emits one token per step for every request in flight, as continuous batching does, and records
each step's batch size (`batch_sizes`) and every request (`requests`), so tests can assert that
concurrent requests were decoded together. Prefix caching is modelled as vLLM reports it:
`num_cached_tokens` is the shared prefix with an earlier prompt, in whole blocks of 16 tokens.

`install(monkeypatch)` puts the stand-in into sys.modules as `vllm` and its submodules.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator

BLOCK_SIZE = 16
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class AsyncEngineArgs:
    model: str
    enable_prefix_caching: bool | None = None
    disable_log_stats: bool = False
    enable_log_requests: bool = False
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    quantization: str | None = None
    enforce_eager: bool = False
    seed: int | None = None


@dataclass
class StructuredOutputsParams:
    json: str | dict | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None

    def __post_init__(self) -> None:
        count = sum(
            getattr(self, k) is not None
            for k in ("json", "regex", "choice", "grammar", "json_object", "structural_tag")
        )
        if count != 1:
            raise ValueError(f"You must use exactly one kind of structured outputs constraint, got {count}")


class RequestOutputKind(Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


class SamplingParams:
    _FIELDS = {
        "n": 1,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "seed": None,
        "stop": None,
        "stop_token_ids": None,
        "max_tokens": 16,
        "min_tokens": 0,
        "logprobs": None,
        "skip_special_tokens": True,
        "output_kind": RequestOutputKind.CUMULATIVE,
        "structured_outputs": None,
        "extra_args": None,
    }

    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - set(self._FIELDS)
        if unknown:  # msgspec.Struct raises TypeError on unexpected keywords, as here
            raise TypeError(f"Unexpected keyword argument(s) {sorted(unknown)}")
        for key, default in self._FIELDS.items():
            setattr(self, key, kwargs.get(key, default))


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: Any
    routed_experts: Any = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    lora_request: Any = None
    kv_transfer_params: dict[str, Any] | None = None

    def finished(self) -> bool:
        return self.finish_reason is not None


class RequestOutput:
    def __init__(
        self,
        request_id,
        prompt,
        prompt_token_ids,
        prompt_logprobs,
        outputs,
        finished,
        metrics=None,
        lora_request=None,
        encoder_prompt=None,
        encoder_prompt_token_ids=None,
        num_cached_tokens=None,
        **kwargs,
    ):
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.prompt_logprobs = prompt_logprobs
        self.outputs = outputs
        self.finished = finished
        self.metrics = metrics
        self.lora_request = lora_request
        self.encoder_prompt = encoder_prompt
        self.encoder_prompt_token_ids = encoder_prompt_token_ids
        self.num_cached_tokens = num_cached_tokens


class StandinTokenizer:
    """Word/punctuation pieces as tokens; ChatML chat template rendered with a jinja2 sandbox like
    transformers does. Not a real tokenizer: token counts are approximate."""

    _PIECE = re.compile(r"\w+|[^\w\s]|\s+")

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.chat_template = CHATML_TEMPLATE
        self._template = ImmutableSandboxedEnvironment().from_string(CHATML_TEMPLATE)

    def tokenize(self, text: str) -> list[str]:
        return self._PIECE.findall(text)

    def encode(self, text: str) -> list[int]:
        return [self.vocab.setdefault(p, len(self.vocab)) for p in self.tokenize(text)]

    def apply_chat_template(self, messages, tools=None, tokenize=True, add_generation_prompt=False, **kwargs):
        text = self._template.render(
            messages=messages, tools=tools, add_generation_prompt=add_generation_prompt, **kwargs
        )
        return self.encode(text) if tokenize else text


def minimal_instance(schema: Any) -> Any:
    """The smallest value valid for a JSON schema: what the default responder 'decodes'."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return minimal_instance(schema[key][0])
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: minimal_instance(props.get(k, {})) for k in schema.get("required", [])}
    if kind == "array":
        return [minimal_instance(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    return {
        "string": "x" * schema.get("minLength", 1),
        "integer": schema.get("minimum", 0),
        "number": 0,
        "boolean": False,
        "null": None,
    }.get(kind, {})


def default_responder(prompt: str, params: SamplingParams) -> str:
    so = params.structured_outputs
    if so is None:
        return "OK"
    if so.choice is not None:
        return so.choice[0]
    if so.json is not None:
        return json.dumps(minimal_instance(json.loads(so.json) if isinstance(so.json, str) else so.json))
    return ""


@dataclass
class RecordedRequest:
    request_id: str
    prompt: str
    params: SamplingParams
    text: str


@dataclass
class _Active:
    record: RecordedRequest
    prompt_ids: list[int]
    pieces: list[str]
    cached: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    emitted: int = 0


class AsyncLLM:
    responder: Callable[[str, SamplingParams], str] = staticmethod(default_responder)
    step_s = 0.002  # one "forward pass" of the batch

    def __init__(self, engine_args: AsyncEngineArgs):
        self.engine_args = engine_args
        self.tokenizer = StandinTokenizer()
        self.requests: list[RecordedRequest] = []
        self.batch_sizes: list[int] = []
        self._active: dict[str, _Active] = {}
        self._seen_prompts: list[list[int]] = []
        self._loop_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.is_shutdown = False

    @classmethod
    def from_engine_args(
        cls,
        engine_args: AsyncEngineArgs,
        start_engine_loop: bool = True,
        usage_context: Any = None,
        stat_loggers: Any = None,
    ) -> AsyncLLM:
        return cls(engine_args)

    def get_tokenizer(self) -> StandinTokenizer:
        return self.tokenizer

    def _cached_tokens(self, ids: list[int]) -> int:
        if not self.engine_args.enable_prefix_caching:
            return 0
        best = 0
        for earlier in self._seen_prompts:
            n = 0
            for a, b in zip(ids, earlier, strict=False):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        return (min(best, len(ids) - 1) // BLOCK_SIZE) * BLOCK_SIZE

    def _check(self, text: str, params: SamplingParams) -> None:
        so = params.structured_outputs
        if so is None:
            return
        if so.choice is not None and text not in so.choice:
            raise ValueError(f"stand-in: scripted output {text!r} is not one of {so.choice}")
        if so.json is not None:
            schema = json.loads(so.json) if isinstance(so.json, str) else so.json
            errors = list(Draft202012Validator(schema).iter_errors(json.loads(text)))
            if errors:
                raise ValueError(f"stand-in: scripted output violates the JSON schema: {errors[0].message}")

    async def generate(self, prompt: str, sampling_params: SamplingParams, request_id: str, **kwargs: Any):
        if self.is_shutdown:
            raise RuntimeError("EngineDeadError: the engine was shut down")
        text = self.responder(prompt, sampling_params)
        self._check(text, sampling_params)
        pieces = self.tokenizer.tokenize(text)[: sampling_params.max_tokens or None]
        prompt_ids = self.tokenizer.encode(prompt)
        record = RecordedRequest(request_id, prompt, sampling_params, text)
        self.requests.append(record)
        active = _Active(record, prompt_ids, pieces, self._cached_tokens(prompt_ids))
        self._seen_prompts.append(prompt_ids)
        self._active[request_id] = active
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._engine_loop())
        self._wake.set()
        try:
            while True:
                output = await active.queue.get()
                yield output
                if output.finished:
                    return
        finally:
            self._active.pop(request_id, None)

    async def _engine_loop(self) -> None:
        """Each step decodes one token of every request in flight: continuous batching."""
        while not self.is_shutdown:
            if not self._active:
                self._wake.clear()
                await self._wake.wait()
                continue
            await asyncio.sleep(self.step_s)
            batch = [a for a in list(self._active.values()) if a.emitted <= len(a.pieces)]
            self.batch_sizes.append(len(batch))
            for a in batch:
                a.emitted += 1
                done = a.emitted >= len(a.pieces)
                produced = a.pieces[: a.emitted]
                reason = None
                if done:
                    reason = "length" if len(a.pieces) == a.record.params.max_tokens else "stop"
                completion = CompletionOutput(
                    index=0,
                    text="".join(produced),
                    token_ids=self.tokenizer.encode("".join(produced)),
                    cumulative_logprob=None,
                    logprobs=None,
                    finish_reason=reason,
                )
                a.queue.put_nowait(
                    RequestOutput(
                        request_id=a.record.request_id,
                        prompt=a.record.prompt,
                        prompt_token_ids=a.prompt_ids,
                        prompt_logprobs=None,
                        outputs=[completion],
                        finished=done,
                        num_cached_tokens=a.cached,
                    )
                )
                if done:
                    a.emitted = len(a.pieces) + 1  # out of the batch; the reader removes it

    async def abort(self, request_id: str | list[str], internal: bool = False) -> None:
        for rid in [request_id] if isinstance(request_id, str) else request_id:
            self._active.pop(rid, None)

    def shutdown(self, timeout: float | None = None) -> None:
        self.is_shutdown = True
        if self._loop_task is not None:
            self._loop_task.cancel()


def install(monkeypatch: Any) -> types.ModuleType:
    """Register the stand-in as `vllm` (and the submodules the backend imports) for one test."""
    names = [
        "vllm",
        "vllm.sampling_params",
        "vllm.outputs",
        "vllm.engine",
        "vllm.engine.arg_utils",
        "vllm.v1",
        "vllm.v1.engine",
        "vllm.v1.engine.async_llm",
    ]
    modules = {name: types.ModuleType(name, "toolkit test stand-in for vLLM (tests/vllm_standin.py)") for name in names}
    root = modules["vllm"]
    root.__version__ = "0.0.0+standin"
    root.AsyncEngineArgs, root.SamplingParams = AsyncEngineArgs, SamplingParams
    root.RequestOutput, root.CompletionOutput = RequestOutput, CompletionOutput
    sp = modules["vllm.sampling_params"]
    sp.SamplingParams, sp.StructuredOutputsParams, sp.RequestOutputKind = (
        SamplingParams,
        StructuredOutputsParams,
        RequestOutputKind,
    )
    modules["vllm.outputs"].RequestOutput, modules["vllm.outputs"].CompletionOutput = RequestOutput, CompletionOutput
    modules["vllm.engine.arg_utils"].AsyncEngineArgs = AsyncEngineArgs
    modules["vllm.v1.engine.async_llm"].AsyncLLM = AsyncLLM
    for name, module in modules.items():
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(modules[parent], child, module)
        monkeypatch.setitem(sys.modules, name, module)
    return root


__all__ = ["AsyncEngineArgs", "AsyncLLM", "SamplingParams", "StructuredOutputsParams", "install"]
