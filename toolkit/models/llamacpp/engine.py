"""A continuous-batching decode loop over one llama.cpp context (llama-cpp-python's low-level API).

One engine thread owns the model and the context. Requests (`Job`s) are queued from any thread;
every step the engine builds one `llama_batch` holding the next token of every sequence that is
generating plus chunks of the prompts still being evaluated, calls `llama_decode` once, and picks
each sequence's next token from its own logits row with its own sampler and grammar. A request
that finishes frees its sequence; a waiting one joins at the next step. This is what llama.cpp's
server does with its slots (tools/server/server-context.cpp), and examples/batched with a fixed
set of sequences.

Slots and the KV cache (slots.py): the cache is unified (`kv_unified`), so a prefix
cached in one sequence is shared with another by tagging its cells (`llama_memory_seq_cp`), the
next step of an agent starts from the KV of the previous one, and N agents with the same system
prompt and tool docs share it. A request whose prefix another request is still evaluating waits
for it, so a shared prefix is evaluated once even when N agents arrive together. No cell is freed
while requests run (that would put their next cells out of position order and change their
numbers); when the cache is full a new epoch begins between two steps, with the running
sequences and the most recently used prefixes restored in order from cell 0.

`batching=False` runs one request at a time through the same code (the serial baseline).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# ggml's OpenMP workers spin while waiting by default; on a busy machine (other processes on the
# same cores) spinning threads starve each other and decoding slows ~10x. Passive waiting costs
# little when the machine is idle. Must be set before llama_cpp (and libgomp) is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import llama_cpp  # noqa: E402
from llama_cpp._logger import logger as _llama_logger

from toolkit.models.llamacpp.sampling import (
    GrammarError,
    JsonEndDetector,
    TokenSelector,
    Utf8Stream,
    VocabScratch,
    token_logprob,
)
from toolkit.models.llamacpp.slots import Slot, SlotTable, common_prefix

log = logging.getLogger(__name__)


GGML_LOG_LEVEL_ERROR = 4  # ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5


@llama_cpp.llama_log_callback
def _errors_only(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp's load-time chatter (warnings included) would land in the middle of CLI output
    if level == GGML_LOG_LEVEL_ERROR or _llama_logger.level and _llama_logger.level <= logging.DEBUG:
        sys.stderr.write(text.decode("utf-8", errors="replace"))


def quiet_llama_logs():
    """Let only llama.cpp's errors through to stderr; returns the `llama_cpp` module."""
    _llama_logger.setLevel(logging.ERROR)
    llama_cpp.llama_log_set(_errors_only, ctypes.c_void_p(0))
    return llama_cpp


PREFIX_WAIT_MIN = 32  # wait for an in-flight prefill only when it shares this many more tokens


@dataclass
class EngineConfig:
    n_ctx: int = 16384  # KV cells shared by all sequences
    n_batch: int = 512  # tokens per llama_decode call
    n_ubatch: int = 48  # tokens per graph compute; < 64 keeps every row on one attention kernel (below)
    max_sequences: int = 8  # the most requests decoded together
    cache_slots: int = 0  # sequence ids one epoch can use (0: 64, at least 4 x max_sequences), see slots.py
    keep_slots: int = 0  # cached prefixes a new epoch keeps (0: max_sequences), in at most half the cells
    batching: bool = True  # False: one request at a time (the serial baseline)
    n_threads: int = 0  # 0: all cores
    flash_attn: bool = True  # sequential attention accumulation: batched == serial results
    repack: bool = False  # ggml's repacked weight kernels (Q4_0/Q4_K/IQ4_NL) differ for 1-3 vs 4+ rows
    seed: int = 0


@dataclass
class JobResult:
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "stop"  # stop | length | error | cancelled
    error: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    logprob: float = 0.0  # scoring jobs: sum of log p over the scored tokens
    submitted: float = 0.0
    admitted: float | None = None
    first_token: float | None = None
    finished: float = 0.0


@dataclass(eq=False)
class Job:
    prompt: list[int]
    max_tokens: int = 256
    grammar: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_at_json_end: bool = False
    complete_texts: frozenset[str] = frozenset()  # stop as soon as the text is one of these
    # a choice among these texts: stop as soon as the text starts only one of them (the caller
    # completes it; decoding the rest of a long tool name one token at a time would settle nothing)
    choices: tuple[str, ...] = ()
    score_from: int | None = None  # scoring: sum log p(prompt[i] | prompt[:i]) for i >= score_from
    on_text: Callable[[str], object] | None = None  # streaming, called from the engine thread
    on_done: Callable[[JobResult], None] | None = None  # called once, from the engine thread
    cancelled: bool = False
    submitted: float = 0.0


@dataclass(eq=False)
class _Active:
    job: Job
    slot: Slot
    result: JobResult
    selector: TokenSelector | None = None
    n_done: int = 0  # prompt tokens in the KV cache
    pending: int | None = None  # sampled token not yet decoded
    stream: Utf8Stream = field(default_factory=Utf8Stream)
    text: str = ""
    json_end: JsonEndDetector | None = None


class LlamaEngine:
    def __init__(self, model_path: str, config: EngineConfig | None = None, verbose: bool = False):
        self.config = cfg = config or EngineConfig()
        if not verbose:
            quiet_llama_logs()
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.use_extra_bufts = cfg.repack
        self.model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self.model:
            raise ValueError(f"llama.cpp could not load {model_path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self.model)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = min(cfg.n_ctx, self.n_ctx_train)  # unified KV: one sequence may use it all
        cparams.n_batch = cfg.n_batch
        cparams.n_ubatch = min(cfg.n_ubatch, cfg.n_batch)
        # every request in an epoch may take a fresh sequence id; llama.cpp allows 256 in all
        n_slots = min(max(cfg.cache_slots or max(64, 4 * cfg.max_sequences), cfg.max_sequences), 255)
        cparams.n_seq_max = n_slots + 1  # + the scratch sequence (see _step)
        threads = cfg.n_threads or os.cpu_count() or 1
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if cfg.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cparams.kv_unified = True
        cparams.swa_full = True  # sliding-window models (Gemma 3) keep full KV so prefixes can be reused
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise ValueError("llama.cpp could not create a context")
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx)
        self.n_ubatch = min(cfg.n_ubatch, cfg.n_batch)
        self.scratch_seq = n_slots
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(cfg.n_batch, 0, 1)
        self.scratch = VocabScratch(self.n_vocab)
        self.table = SlotTable(self.ctx, n_slots)
        self.slots = self.table.slots
        self._active: list[_Active] = []
        self._pending: deque[Job] = deque()
        self._controls: deque[Callable[[], None]] = deque()  # run by the engine thread when idle
        self._cv = threading.Condition()
        self._closing = False
        self._draining = False  # the epoch is over: admit nothing until the running requests finish
        self._thread: threading.Thread | None = None
        self.decode_calls = 0  # counters for benchmarks and tests
        self.kv_full_retries = 0
        self.max_batch_sequences = 0

    # --- model helpers (any thread: the vocab is read-only) -------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 16
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_bos, special)
        if n < 0:
            raise ValueError("tokenization failed")
        return list(buf[:n])

    def token_piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        return buf.raw[: max(n, 0)]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.token_piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    # --- queue ----------------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        with self._cv:
            if self._closing:
                raise RuntimeError("the engine is closed")
            self._ensure_thread()
            job.submitted = time.perf_counter()
            self._pending.append(job)
            self._cv.notify()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llamacpp-engine", daemon=True)
            self._thread.start()

    def clear_cache(self, timeout: float = 60.0) -> None:
        """Forget every cached prefix (waits until no request is in flight). For benchmarks."""
        done = threading.Event()

        def clear() -> None:
            self.table.forget_all()
            done.set()

        with self._cv:
            self._ensure_thread()
            self._controls.append(clear)
            self._cv.notify()
        if not done.wait(timeout):
            raise TimeoutError("the engine did not become idle")

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.ctx:
            llama_cpp.llama_batch_free(self.batch)
            llama_cpp.llama_free(self.ctx)
            llama_cpp.llama_model_free(self.model)
            self.ctx = self.model = None

    # --- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._pending and not self._active and not self._controls:
                    self._cv.wait()
                if self._closing:
                    break
                while self._controls and not self._active:
                    self._controls.popleft()()
                self._admit()
            if self._active:
                try:
                    self._step()
                except Exception as exc:  # noqa: BLE001 - never let the loop die with requests waiting
                    log.exception("llama.cpp engine step failed")
                    for a in list(self._active):
                        self._finish(a, "error", f"{type(exc).__name__}: {exc}")
            elif self._pending:
                time.sleep(0.001)  # everything pending is deferred behind nothing: retry
        for a in list(self._active):
            self._finish(a, "cancelled", "the engine was closed")
        with self._cv:
            while self._pending:
                self._fail(self._pending.popleft(), "cancelled", "the engine was closed")

    def _fail(self, job: Job, reason: str, message: str) -> None:
        result = JobResult(
            finish_reason=reason,
            error=message,
            prompt_tokens=len(job.prompt),
            submitted=job.submitted,
            finished=time.perf_counter(),
        )
        if job.on_done:
            job.on_done(result)

    def _reserved(self) -> int:
        """KV cells the running requests may still add: the rest of each prompt and of each
        max_tokens. With what the epoch has placed, what a new request can count on."""
        total = 0
        for a in self._active:
            total += len(a.job.prompt) - a.n_done
            if a.job.score_from is None:
                total += max(a.job.max_tokens - len(a.result.tokens), 0)
        return total

    def _room(self) -> int:
        return self.n_ctx - 1 - self.table.placed - self._reserved()  # - 1: the scratch cell (_step)

    def _admit(self) -> None:
        if self._draining and not self._active:
            self._new_epoch()
        limit = self.config.max_sequences if self.config.batching else 1
        deferred: list[Job] = []
        while self._pending and len(self._active) < limit and not self._draining:
            job = self._pending.popleft()
            if job.cancelled:
                self._fail(job, "cancelled", "cancelled before it started")
                continue
            if len(job.prompt) + 1 > self.n_ctx or not job.prompt:
                self._fail(job, "error", f"the prompt has {len(job.prompt)} tokens; the context holds {self.n_ctx}")
                continue
            cap = len(job.prompt) - 1 if job.score_from is None else max(job.score_from - 1, 0)
            best_len, best = self.table.best_prefix(job.prompt, cap)
            # a request still evaluating a longer shared prefix: wait and copy it when it's done
            waiting = any(
                a.n_done < len(a.job.prompt)
                and min(common_prefix(a.job.prompt, job.prompt), cap) >= max(best_len, a.n_done) + PREFIX_WAIT_MIN
                for a in self._active
            )
            if waiting:
                deferred.append(job)
                continue
            if not self._fits(job, best, best_len):
                need = len(job.prompt) + (0 if job.score_from is not None else job.max_tokens)
                if self._new_epoch(room_for=need):
                    best_len, best = self.table.best_prefix(job.prompt, cap)
            if not self._fits(job, best, best_len):
                if self._active:  # the running sequences leave no room: it waits for them to finish
                    self._draining = True  # first in, first served: so do the rest
                    deferred.append(job)
                    break
                self.table.forget_all()  # alone in an empty cache the prompt fits; _start clamps max_tokens
                best_len, best = 0, self.slots[0]
            self._start(job, best, best_len)
        self._pending.extendleft(reversed(deferred))

    def _fits(self, job: Job, best: Slot, reuse: int) -> bool:
        need = len(job.prompt) - reuse + (0 if job.score_from is not None else job.max_tokens)
        return need <= self._room() and self.table.can_take(best, reuse)

    def _new_epoch(self, room_for: int = 0) -> bool:
        """Start the cache over (slots.py) with the running sequences restored and as many
        recent cached prefixes as leave `room_for` cells beside what the running requests may
        still add. False, and nothing done, when the running sequences alone leave no such room."""
        running = [s for s in self.slots if s.busy]
        # the new epoch starts with the running sequences' cells placed, and what they may add reserved
        spare = self.n_ctx - 1 - sum(len(s.tokens) for s in running) - self._reserved() - room_for
        if spare < 0:
            return False
        keep = min(self.config.keep_slots or self.config.max_sequences, len(self.slots) - 1 - len(running))
        lost = self.table.new_epoch(keep_slots=max(keep, 0), keep_cells=min(self.n_ctx // 2, spare))
        for a in [a for a in self._active if a.slot in lost]:
            self._finish(a, "error", "llama.cpp could not move this request's KV cache into a new epoch")
        self._draining = False
        return True

    def _start(self, job: Job, best: Slot, best_len: int) -> None:
        slot = self.table.take(job.prompt, best, best_len)
        now = time.perf_counter()
        if job.score_from is None:
            job.max_tokens = max(min(job.max_tokens, self._room() - (len(job.prompt) - best_len)), 1)
        result = JobResult(prompt_tokens=len(job.prompt), cached_tokens=best_len, submitted=job.submitted, admitted=now)
        active = _Active(job=job, slot=slot, result=result, n_done=best_len)
        if job.score_from is None:
            try:
                active.selector = TokenSelector(
                    self.vocab, self.scratch, job.grammar, job.temperature, job.top_p, job.seed
                )
            except GrammarError as exc:
                slot.busy = False
                self._fail(job, "error", str(exc))
                return
            active.json_end = JsonEndDetector() if job.stop_at_json_end else None
        self._active.append(active)

    def _step(self) -> None:
        # Same numbers batched or not. ggml's CPU flash attention has three kernels: a tiled one
        # for ubatches of >= 64 query rows, a KV-split one for a single row over >= 512 cells,
        # and a row-by-row one that walks the KV cells in order, skipping masked cells, so a
        # row's result doesn't depend on what else is in the batch. We keep every row on the
        # last: ubatches of < 64 rows (n_ubatch), and a ubatch is never a single row: a throwaway
        # token in the scratch sequence pads it to two (its cell, the last one placed, is freed
        # right after, so the head moves back by one and no hole is left). That kernel does depend
        # on the order of a sequence's cells, which is why no cell is freed within an epoch
        # (slots.py; tests/test_llamacpp_cell_order.py).
        b, budget = self.batch, self.config.n_batch - 1
        b.n_tokens = 0
        outputs: list[tuple[int, _Active, int]] = []  # (batch index, request, position)
        chunks: list[tuple[_Active, int]] = []  # prompt tokens evaluated this step, per request

        def add(token: int, pos: int, seq: int, want_logits: bool, a: _Active) -> None:
            i = b.n_tokens
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, want_logits
            b.seq_id[i][0] = seq
            b.n_tokens = i + 1
            if want_logits:
                outputs.append((i, a, pos))

        for a in [a for a in self._active if a.job.cancelled]:
            self._finish(a, "cancelled", "cancelled")
        # generating sequences first (one token each), then prompt chunks fill the rest
        for a in self._active:
            if a.pending is not None:
                add(a.pending, len(a.slot.tokens), a.slot.seq, True, a)
        for a in self._active:
            if a.n_done >= len(a.job.prompt) or b.n_tokens >= budget:
                continue
            take = min(budget - b.n_tokens, len(a.job.prompt) - a.n_done)
            last = len(a.job.prompt) - 1
            for pos in range(a.n_done, a.n_done + take):
                if a.job.score_from is None:
                    want = pos == last
                else:  # the logits at pos score the token at pos + 1
                    want = a.job.score_from - 1 <= pos < last
                add(a.job.prompt[pos], pos, a.slot.seq, want, a)
            chunks.append((a, take))
        if b.n_tokens == 0:
            return
        padded = b.n_tokens % self.n_ubatch == 1
        if padded:
            i = b.n_tokens
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = b.token[0], 0, 1, False
            b.seq_id[i][0] = self.scratch_seq
            b.n_tokens = i + 1
        rc = llama_cpp.llama_decode(self.ctx, b)
        if padded:
            llama_cpp.llama_memory_seq_rm(self.memory, self.scratch_seq, -1, -1)
        if rc == 1 and self.table.drop_idle():
            # no KV slot for the batch, which the accounting (_room) should never allow; nothing
            # was decoded, so free a cached prefix, retry, and start a new epoch soon
            log.warning("llama.cpp KV cache full: dropped a cached prefix, retrying the step")
            self.kv_full_retries += 1
            self._draining = True
            return
        if rc != 0:
            self._draining = True  # a failed decode may have removed cells: start the cache over
            raise RuntimeError(f"llama_decode returned {rc}")
        self.decode_calls += 1
        self.table.placed += b.n_tokens - padded
        self.max_batch_sequences = max(
            self.max_batch_sequences, len(chunks) + sum(a.pending is not None for a in self._active)
        )
        for a in self._active:  # commit what is now in the KV cache
            if a.pending is not None:
                a.slot.tokens.append(a.pending)
                a.pending = None
        for a, take in chunks:
            a.slot.tokens.extend(a.job.prompt[a.n_done : a.n_done + take])
            a.n_done += take
        for i, a, pos in outputs:
            if a not in self._active:
                continue
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
            if a.job.score_from is not None:
                a.result.logprob += token_logprob(logits, a.job.prompt[pos + 1])
            else:
                self._next_token(a, logits)
        for a in [a for a in self._active if a.job.score_from is not None and a.n_done >= len(a.job.prompt)]:
            self._finish(a, "stop")

    def _next_token(self, a: _Active, logits: np.ndarray) -> None:
        selector = a.selector
        assert selector is not None  # _start gives one to every job that generates (score_from is None)
        try:
            token = selector.select(logits)
        except GrammarError as exc:
            self._finish(a, "error", str(exc))
            return
        selector.accept(token)
        if a.result.first_token is None:
            a.result.first_token = time.perf_counter()
        if self.is_eog(token):
            self._finish(a, "stop")
            return
        a.result.tokens.append(token)
        new = a.stream.push(self.token_piece(token))
        done = None
        if new:
            if a.json_end is not None:
                end = a.json_end.feed(new)
                if end is not None:
                    new, done = new[:end], "stop"
            a.text += new
            for stop in a.job.stop:
                at = a.text.find(stop)
                if at >= 0:
                    new = new[: max(0, len(new) - (len(a.text) - at))]
                    a.text, done = a.text[:at], "stop"
                    break
            if a.text in a.job.complete_texts:
                done = "stop"
            elif a.job.choices and not done and sum(c.startswith(a.text) for c in a.job.choices) == 1:
                done = "stop"
            if new and a.job.on_text:
                a.job.on_text(new)
        if done:
            self._finish(a, done)
        elif len(a.result.tokens) >= a.job.max_tokens:
            self._finish(a, "length")
        else:
            a.pending = token

    def _finish(self, a: _Active, reason: str, error: str | None = None) -> None:
        if a in self._active:
            self._active.remove(a)
        if a.pending is not None:
            a.pending = None
        a.slot.busy = False
        a.slot.last_used = time.perf_counter()
        if reason == "error":  # a failed decode may have left cells the slot doesn't know about
            a.slot.tokens = []  # so nothing reuses them; the cells go with the epoch
        if a.selector is not None:
            a.selector.close()
        r = a.result
        r.finish_reason, r.error, r.finished = reason, error, time.perf_counter()
        r.text = a.text if a.job.score_from is None else ""
        if a.job.on_done:
            try:
                a.job.on_done(r)
            except Exception:  # noqa: BLE001
                log.exception("on_done callback failed")
