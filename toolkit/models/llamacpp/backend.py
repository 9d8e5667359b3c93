"""The embedded CPU backend: a GGUF model through llama-cpp-python, tool calls under a grammar.

    backend = LlamaCppBackend.from_model_string("llamacpp", "default")   # or load_backend()
    response = await backend.generate(LLMRequest(messages=..., tools=[...]))

A tool turn is written in the model's own tool format when its chat template has one (Qwen 2.5's
`<tool_call>` blocks), else in a generic JSON format (formats.py), and decoded in constrained
stages that continue one sequence (tool_turn.py): call or answer, the tool's name as a choice
among the offered names, its arguments under the tool's JSON schema, then one more call or the
end of the turn. A call either parses and validates or comes back as `parse_error`; it can't
come back as junk text. `request.constraint` (json_schema / choice / grammar) decodes the whole
reply under it instead.

Concurrency: every request becomes a job on the engine thread (engine.py), which decodes
all requests in flight together (continuous batching). `batching=False`, or the environment
variable TOOLKIT_LLAMACPP_BATCHING=0, decodes them one after another.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from toolkit.models.base import BackendError, Capabilities
from toolkit.models.grammar import GrammarChecker, choice_gbnf
from toolkit.models.llamacpp.engine import EngineConfig, Job, JobResult, LlamaEngine
from toolkit.models.llamacpp.files import ModelFile, resolve_model
from toolkit.models.llamacpp.formats import FORMATS, ToolFormat, format_for_template
from toolkit.models.llamacpp.prompt import ChatRenderer, chat_messages
from toolkit.models.llamacpp.tool_turn import ToolTurn
from toolkit.types import LLMRequest, LLMResponse, Timings, Usage


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "off")


class LlamaCppBackend:
    name = "llamacpp"
    capabilities = Capabilities(constrained=True, native_tools=True, batching=True, scoring=True)

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelFile,
        *,
        n_ctx: int = 16384,
        max_sequences: int = 8,
        batching: bool | None = None,
        n_threads: int = 0,
        n_batch: int = 512,
        verbose: bool = False,
        tool_format: str | None = None,
    ):
        # auto: the template's own format when it has one; TOOLKIT_LLAMACPP_TOOL_FORMAT forces one
        tool_format = tool_format or os.environ.get("TOOLKIT_LLAMACPP_TOOL_FORMAT", "").strip() or "auto"
        if tool_format != "auto" and tool_format not in FORMATS:
            raise BackendError(f"unknown tool format {tool_format!r}; choose auto, {', '.join(FORMATS)}")
        self.model = model if isinstance(model, ModelFile) else ModelFile(path=Path(model), label=str(model))
        batching = _env_flag("TOOLKIT_LLAMACPP_BATCHING", True) if batching is None else batching
        config = EngineConfig(
            n_ctx=n_ctx, n_batch=n_batch, max_sequences=max_sequences, batching=batching, n_threads=n_threads
        )
        try:
            self.engine = LlamaEngine(str(self.model.path), config, verbose=verbose)
        except ValueError as exc:
            raise BackendError(f"could not load {self.model.path}: {exc}") from None
        self.name = f"llamacpp:{self.model.label}"
        self.grammars = GrammarChecker(self.engine.vocab)
        template, bos, eos, architecture = self._template_tokens()
        self.renderer = ChatRenderer(template, bos, eos, architecture)
        # the model's own tool format when its template has one (formats.py)
        self.tool_format: ToolFormat = FORMATS[tool_format] if tool_format != "auto" else format_for_template(template)

    @classmethod
    def from_model_string(cls, kind: str, target: str, **options: Any) -> LlamaCppBackend:
        return cls(resolve_model(kind, target), **options)

    @property
    def batching(self) -> bool:
        return self.engine.config.batching

    @batching.setter
    def batching(self, on: bool) -> None:  # the switch: takes effect for requests admitted next
        self.engine.config.batching = on

    def _template_tokens(self) -> tuple[str | None, str, str, str]:
        import llama_cpp

        raw = llama_cpp.llama_model_chat_template(self.engine.model, None)
        template = raw.decode("utf-8") if raw else None

        def special(token: int) -> str:
            if token < 0:
                return ""
            buf = ctypes.create_string_buffer(256)
            n = llama_cpp.llama_token_to_piece(self.engine.vocab, token, buf, 256, 0, True)
            return buf.raw[: max(n, 0)].decode("utf-8", errors="replace")

        bos = special(llama_cpp.llama_vocab_bos(self.engine.vocab))
        eos = special(llama_cpp.llama_vocab_eos(self.engine.vocab))
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_model_meta_val_str(self.engine.model, b"general.architecture", buf, 64)
        architecture = buf.value.decode() if n > 0 else ""
        return template, bos, eos, architecture

    # --- prompt -> tokens ------------------------------------------------------------------

    def prompt_tokens(self, request: LLMRequest, *, with_tools: bool, suffix: str = "") -> list[int]:
        messages, tools = chat_messages(request, with_tools=with_tools, fmt=self.tool_format)
        text = self.renderer.render(messages, tools) + suffix
        add_bos = not self.renderer.starts_with_bos(text) and self._adds_bos()
        return self.engine.tokenize(text, add_bos=add_bos, special=True)

    def _adds_bos(self) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_get_add_bos(self.engine.vocab))

    def continuation(self, text: str) -> list[int]:
        return self.engine.tokenize(text, add_bos=False, special=False)

    # --- jobs on the engine thread -----------------------------------------------------------

    async def run_job(self, job: Job) -> JobResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JobResult] = loop.create_future()

        def deliver(result: JobResult) -> None:
            def settle() -> None:
                if not future.done():
                    future.set_result(result)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the caller's event loop is gone (asyncio.run ended): nobody waits
                pass

        job.on_done = deliver
        self.engine.submit(job)
        try:
            return await future
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    def _job(self, request: LLMRequest, prompt: list[int], **fields: Any) -> Job:
        s = request.sampling
        fields.setdefault("max_tokens", s.max_tokens)
        fields.setdefault("stop", tuple(s.stop))
        return Job(prompt=prompt, temperature=s.temperature, top_p=s.top_p, seed=s.seed, **fields)

    # --- the protocol ------------------------------------------------------------------------

    async def generate(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        try:
            if request.constraint is not None:
                job = self._constrained_job(request)
                results = [await self.run_job(job)]
                response = LLMResponse(text=results[0].text)
            elif request.tools:
                turn = ToolTurn(self, request, self.tool_format)
                try:
                    response = await turn.run()
                finally:
                    results = turn.results
            else:
                results = [await self.run_job(self._job(request, self.prompt_tokens(request, with_tools=False)))]
                response = LLMResponse(text=results[0].text)
        except (BackendError, ValueError) as exc:  # ValueError: the chat template refused the messages
            return LLMResponse(finish_reason="error", parse_error=str(exc))
        return self._account(response, results, started)

    async def stream(self, request: LLMRequest) -> AsyncGenerator[str | LLMResponse, bool | None]:
        """Text pieces as they are decoded, then the LLMResponse. Tool turns yield only the response.
        Sent True, it stops decoding at the next step and ends with the response so far."""
        if request.tools and request.constraint is None:
            yield await self.generate(request)
            return
        started = time.perf_counter()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        try:
            job = (
                self._constrained_job(request)
                if request.constraint is not None
                else self._job(request, self.prompt_tokens(request, with_tools=False))
            )
        except BackendError as exc:
            yield LLMResponse(finish_reason="error", parse_error=str(exc))
            return
        job.on_text = lambda piece: loop.call_soon_threadsafe(queue.put_nowait, piece)
        task = asyncio.ensure_future(self.run_job(job))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (piece := await queue.get()) is not None:
                if (yield piece):  # the consumer has read enough
                    job.cancelled = True
            while not queue.empty():  # pieces that raced the end marker
                if (piece := queue.get_nowait()) is not None:
                    yield piece
            result = await task
        finally:
            if not task.done():
                job.cancelled = True
                task.cancel()
        yield self._account(LLMResponse(text=result.text), [result], started)

    async def score(self, request: LLMRequest, candidates: list[str]) -> list[float]:
        """Sum of token log-probabilities of each candidate continuing the request's prompt (the
        chat-rendered messages, with the tool reply format when tools are given, then the
        assistant turn's opening). To rank tool choices, pass e.g. '{"name": "math.calculate"': with
        tools, the model's tool format opens the call first (hermes: `<tool_call>\n`), so what is
        scored is how the model itself would begin the call."""
        prompt = self.prompt_tokens(request, with_tools=bool(request.tools))
        if request.tools and self.tool_format.opener:
            prompt = prompt + self.engine.tokenize(self.tool_format.opener, add_bos=False, special=True)
        jobs = []
        for text in candidates:
            tokens = self.continuation(text)
            jobs.append(Job(prompt=prompt + tokens, score_from=len(prompt)) if tokens else None)
        results = await asyncio.gather(*(self.run_job(j) for j in jobs if j is not None))
        it = iter(results)
        scores = []
        for j in jobs:
            r = next(it) if j is not None else None
            if r is not None and r.finish_reason == "error":
                raise BackendError(f"scoring failed: {r.error}")
            scores.append(r.logprob if r is not None else 0.0)
        return scores

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.close)

    # --- constrained replies -----------------------------------------------------------------

    def _constrained_job(self, request: LLMRequest) -> Job:
        c = request.constraint
        assert c is not None  # generate() sends only constrained requests here
        prompt = self.prompt_tokens(request, with_tools=False)
        if c.kind == "json_schema":
            grammar, _ = self.grammars.for_schema(c.json_schema or {}, budget_tokens=request.sampling.max_tokens)
            return self._job(request, prompt, grammar=grammar, stop_at_json_end=True, stop=())
        if c.kind == "choice":
            if not c.choices:
                raise BackendError("a choice constraint needs at least one choice")
            # a choice no other choice extends is complete the moment it is written
            final = frozenset(x for x in c.choices if not any(o != x and o.startswith(x) for o in c.choices))
            return self._job(request, prompt, grammar=choice_gbnf(c.choices), stop=(), complete_texts=final)
        if not c.grammar or not self.grammars.parses(c.grammar):
            raise BackendError("the grammar constraint could not be parsed by llama.cpp (GBNF expected)")
        return self._job(request, prompt, grammar=c.grammar, stop=())

    # --- accounting --------------------------------------------------------------------------

    def _account(self, response: LLMResponse, results: list[JobResult], started: float) -> LLMResponse:
        if not results:
            return response
        first = results[0]
        errors = [r.error for r in results if r.finish_reason == "error"]
        if errors and response.finish_reason != "error" and not response.tool_calls:
            response.finish_reason, response.parse_error = "error", response.parse_error or errors[0]
        elif results[-1].finish_reason == "length" and response.finish_reason == "stop":
            response.finish_reason = "length"
        completion = sum(len(r.tokens) for r in results)
        prompt = first.prompt_tokens + sum(r.prompt_tokens - r.cached_tokens for r in results[1:])
        response.usage = Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=first.cached_tokens)
        total = time.perf_counter() - started
        ttft = prefill = rate = None
        if first.first_token is not None:
            ttft = first.first_token - first.submitted
            prefill = first.first_token - (first.admitted or first.submitted)
            decode_time = sum(r.finished - r.first_token for r in results if r.first_token is not None)
            decoded = sum(max(len(r.tokens) - 1, 0) for r in results)
            rate = decoded / decode_time if decode_time > 0 and decoded else None
        response.timings = Timings(total_s=total, ttft_s=ttft, prefill_s=prefill, decode_tokens_per_s=rate)
        return response
