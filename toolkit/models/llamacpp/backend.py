"""The embedded CPU backend: a GGUF model through llama-cpp-python, tool calls under a grammar.

    backend = LlamaCppBackend.from_model_string("llamacpp", "default")   # or load_backend()
    response = await backend.generate(LLMRequest(messages=..., tools=[...]))

A tool turn is decoded in two constrained stages that continue one sequence (the second reuses
the first's KV cache):

1. after the prompt and `{"name": "`, a choice among the offered tool names and `final_answer`
   (tool_choice `required` drops `final_answer`, `none` leaves only it, a tool name forces it),
   decoded until what was written begins only one of them: the rest of the name is appended as
   tokens, not decoded one step each (BFCL's names run to 10+ tokens);
2. after `", "arguments": `, the arguments under that action's JSON schema (sanitised for
   llama.cpp's converter; a generic JSON object grammar if it still can't be converted), or the
   final answer's words, at most `sampling.answer_max_tokens` of them (0: none are decoded).

The call is then validated against the original schema (toolkit.models.parsing), so a call
either parses and validates or comes back as `parse_error`; it can't come back as junk text.
`request.constraint` (json_schema / choice / grammar) decodes the whole reply under it instead.

Concurrency: every request becomes a job on the engine thread (engine.py), which decodes
all requests in flight together (continuous batching). `batching=False`, or the environment
variable TOOLKIT_LLAMACPP_BATCHING=0, decodes them one after another.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from toolkit.models.base import BackendError, Capabilities
from toolkit.models.grammar import GrammarChecker, choice_gbnf
from toolkit.models.llamacpp.engine import EngineConfig, Job, JobResult, LlamaEngine
from toolkit.models.llamacpp.files import ModelFile, resolve_model
from toolkit.models.llamacpp.prompt import (
    ARGS_INFIX,
    CALL_PREFIX,
    FINAL_ANSWER,
    ChatRenderer,
    chat_messages,
    final_grammar,
)
from toolkit.models.parsing import parse_native_calls
from toolkit.types import LLMRequest, LLMResponse, Timings, ToolCall, Usage


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "off")


def _signature(call: ToolCall) -> str:
    return call.name + json.dumps(call.arguments, sort_keys=True, ensure_ascii=False)


def _previous_calls(request: LLMRequest) -> set[str]:
    """Calls already made in this conversation whose results it shows."""
    answered = {m.tool_call_id for m in request.messages if m.role == "tool"}
    return {
        _signature(c)
        for m in request.messages
        if m.role == "assistant"
        for c in m.tool_calls
        if c.id in answered or not answered
    }


def _completed_choice(text: str, options: list[str]) -> str | None:
    """The option `text` names: itself, else the only option it begins (None: cut off)."""
    if text in options:
        return text
    started = [o for o in options if o.startswith(text)] if text else []
    return started[0] if len(started) == 1 else None


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
    ):
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
        self.renderer = ChatRenderer(*self._template_tokens())

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
        text = self.renderer.render(chat_messages(request, with_tools=with_tools)) + suffix
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
                response, results = await self._tool_turn(request)
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
        assistant turn's opening). To rank tool choices, pass e.g. '{"name": "math.calculate"'."""
        prompt = self.prompt_tokens(request, with_tools=bool(request.tools))
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

    async def _tool_turn(self, request: LLMRequest) -> tuple[LLMResponse, list[JobResult]]:
        names = [t.name for t in request.tools]
        choice = request.tool_choice
        if choice == "required":
            options = names
        elif choice == "none":
            options = [FINAL_ANSWER]
        elif choice in names:
            options = [choice]
        else:
            options = names + [FINAL_ANSWER]
        prompt = self.prompt_tokens(request, with_tools=True, suffix=CALL_PREFIX)
        results: list[JobResult] = []
        name: str | None
        if len(options) == 1:
            name, chosen = options[0], self.continuation(options[0] + '"')
        else:  # stage 1: the action, decoded until only one option fits what was written
            first = await self.run_job(
                self._job(
                    request,
                    prompt,
                    grammar=choice_gbnf(options, suffix='"'),
                    stop=('"',),
                    max_tokens=64,
                    choices=tuple(options),
                )
            )
            results.append(first)
            if first.finish_reason == "error":
                raise BackendError(first.error or "decoding failed")
            name = _completed_choice(first.text, options)
            if name is None:
                return LLMResponse(
                    text=first.text, parse_error=f"the action choice was cut off ({first.text!r})"
                ), results
            chosen = self._completed_tokens(first.tokens, name + '"')
        response = await self._arguments(request, prompt + chosen, name, results)
        if (
            response.tool_calls
            and FINAL_ANSWER in options
            and _signature(response.tool_calls[0]) in _previous_calls(request)
        ):
            # Small models tend to repeat the call whose result they were just shown. The same
            # call gives the same result, so the useful next move is the answer.
            response = await self._arguments(
                request, prompt + self.continuation(FINAL_ANSWER + '"'), FINAL_ANSWER, results
            )
        return response, results

    def _completed_tokens(self, tokens: list[int], text: str) -> list[int]:
        """The model's own tokens for the part of `text` it wrote (up to the closing quote, which a
        stop may have cut from the text but not from the tokens), then the rest of `text`."""
        written = self.engine.detokenize(tokens)
        if not text.startswith(written):
            return self.continuation(text)
        rest = text[len(written) :]
        return tokens + (self.continuation(rest) if rest else [])

    async def _arguments(
        self, request: LLMRequest, prefix: list[int], name: str, results: list[JobResult]
    ) -> LLMResponse:
        """Stage 2: the arguments of `name` after `prefix` (the prompt up to the name's closing quote)."""
        budget = max(request.sampling.max_tokens - sum(len(r.tokens) for r in results), 16)
        if name == FINAL_ANSWER:
            cap = request.sampling.answer_max_tokens
            if cap == 0:  # the caller wants only to know that the model answers instead of calling
                return LLMResponse(text="")
            budget = budget if cap is None else min(budget, max(cap, 16))
            grammar = final_grammar(budget)
        else:
            schema = next(t.parameters for t in request.tools if t.name == name)
            grammar, _ = self.grammars.for_schema(schema, budget_tokens=budget)
        second = await self.run_job(
            self._job(
                request,
                prefix + self.continuation(ARGS_INFIX),
                grammar=grammar,
                stop_at_json_end=True,
                stop=(),
                max_tokens=budget,
            )
        )
        results.append(second)
        try:
            arguments = json.loads(second.text, strict=False)
        except ValueError:
            reason = "it hit max_tokens" if second.finish_reason == "length" else second.error or "invalid JSON"
            return LLMResponse(
                text=second.text,
                finish_reason="length" if second.finish_reason == "length" else "error",
                parse_error=f"the arguments of {name} were not complete JSON ({reason})",
            )
        if name == FINAL_ANSWER:
            answer = arguments.get("answer") if isinstance(arguments, dict) else None
            return LLMResponse(text=answer if isinstance(answer, str) else json.dumps(arguments))
        return parse_native_calls([{"name": name, "arguments": arguments}], request.tools).to_response()

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
