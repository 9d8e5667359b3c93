"""Per-sequence token selection and stop detection for the llama.cpp engine.

Each sequence in a batch has its own `TokenSelector`: a llama.cpp grammar sampler (the C
implementation, built from GBNF) plus greedy or temperature/top-p sampling done in numpy on the
sequence's logits row. Greedy decoding under a grammar first checks the unconstrained argmax
against the grammar on a one-token array and only masks the whole vocabulary when that token is
rejected: the result is the same token (the argmax over allowed tokens), at a fraction of the cost
on large vocabularies (Gemma 3 has 262k tokens).
"""

from __future__ import annotations

import ctypes
import math
import os

import numpy as np

# ggml's OpenMP workers spin while waiting by default; on a busy machine (other processes on the
# same cores) spinning threads starve each other and decoding slows ~10x. Passive waiting costs
# little when the machine is idle. Must be set before llama_cpp (and libgomp) is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import llama_cpp  # noqa: E402

NEG_INF = float("-inf")


class GrammarError(ValueError):
    """llama.cpp could not parse a GBNF grammar."""


class VocabScratch:
    """One full-vocabulary llama_token_data_array, reused by every selector (the engine runs one
    thread, so selectors never use it concurrently)."""

    def __init__(self, n_vocab: int):
        self.n_vocab = n_vocab
        self.data = np.recarray(
            (n_vocab,), dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
        )
        self.ids = np.arange(n_vocab, dtype=np.intc)
        self.array = llama_cpp.llama_token_data_array(
            data=self.data.ctypes.data_as(llama_cpp.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
        )
        self.one = (llama_cpp.llama_token_data * 1)()
        self.one_array = llama_cpp.llama_token_data_array(data=self.one, size=1, selected=-1, sorted=False)


class TokenSelector:
    def __init__(
        self,
        vocab: ctypes.c_void_p,
        scratch: VocabScratch,
        grammar: str | None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ):
        self.scratch = scratch
        self.temperature = temperature
        self.top_p = top_p
        self.rng = np.random.default_rng(seed)
        self.grammar = None
        if grammar:
            self.grammar = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not self.grammar:
                raise GrammarError("the grammar could not be parsed by llama.cpp")

    def close(self) -> None:
        if self.grammar:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None

    def __del__(self) -> None:
        self.close()

    def _allowed(self, token: int) -> bool:
        one = self.scratch.one[0]
        one.id, one.logit, one.p = token, 0.0, 0.0  # type: ignore[assignment]  # ctypes fields take ints, typed as c_int32
        self.scratch.one_array.size = 1
        self.scratch.one_array.selected = -1
        self.scratch.one_array.sorted = False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self.scratch.one_array))
        return self.scratch.one[0].logit != NEG_INF

    def _masked(self, logits: np.ndarray) -> np.ndarray:
        s = self.scratch
        s.data.id[:] = s.ids
        s.data.logit[:] = logits
        s.data.p[:] = 0.0
        s.array.size = s.n_vocab
        s.array.selected = -1
        s.array.sorted = False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(s.array))
        if s.array.size != s.n_vocab:  # the grammar sampler masks in place; guard against reordering
            raise RuntimeError("grammar sampler changed the candidate array size")
        return s.data.logit

    def select(self, logits: np.ndarray) -> int:
        """Pick the next token from one logits row (does not accept it; call `accept`)."""
        if self.temperature <= 0.0:
            token = int(np.argmax(logits))
            if self.grammar is None or self._allowed(token):
                return token
            masked = self._masked(logits)
            token = int(np.argmax(masked))
            if masked[token] == NEG_INF:
                raise GrammarError("the grammar allows no token here")
            return token
        scores = self._masked(logits) if self.grammar is not None else logits
        scores = np.asarray(scores, dtype=np.float64) / self.temperature
        top = float(np.max(scores))
        if top == NEG_INF:
            raise GrammarError("the grammar allows no token here")
        probs = np.exp(scores - top)
        probs /= probs.sum()
        if self.top_p < 1.0:
            order = np.argsort(-probs)
            keep = np.cumsum(probs[order]) <= self.top_p
            keep[0] = True
            trimmed = np.zeros_like(probs)
            trimmed[order[keep]] = probs[order[keep]]
            probs = trimmed / trimmed.sum()
        return int(self.rng.choice(len(probs), p=probs))

    def accept(self, token: int) -> None:
        if self.grammar:
            llama_cpp.llama_sampler_accept(self.grammar, token)


def token_logprob(logits: np.ndarray, token: int) -> float:
    """log softmax(logits)[token], computed stably in float64."""
    row = np.asarray(logits, dtype=np.float64)
    top = float(row.max())
    return float(row[token] - top - math.log(np.exp(row - top).sum()))


class JsonEndDetector:
    """Tells when the first top-level JSON object/array in a stream of text has closed, so a
    constrained reply can stop there without spending a decode step on the end-of-turn token."""

    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.in_string = False
        self.escaped = False

    def feed(self, text: str) -> int | None:
        """Consume `text`; return the index just past the closing bracket if it is in `text`."""
        for i, ch in enumerate(text):
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
                self.started = True
            elif ch in "}]":
                self.depth -= 1
                if self.started and self.depth == 0:
                    return i + 1
        return None


class Utf8Stream:
    """Accumulates token bytes and yields only complete UTF-8 text (a character can span tokens)."""

    def __init__(self) -> None:
        self.data = b""
        self.emitted = 0  # characters of the decoded text already handed out

    def push(self, piece: bytes) -> str:
        self.data += piece
        text = self.data.decode("utf-8", errors="ignore")
        if self.data and not _complete_utf8(self.data):
            text = self.data[: _last_complete(self.data)].decode("utf-8", errors="ignore")
        new = text[self.emitted :]
        self.emitted = len(text)
        return new

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _complete_utf8(data: bytes) -> bool:
    return _last_complete(data) == len(data)


def _last_complete(data: bytes) -> int:
    """Length of the longest prefix of `data` that doesn't end inside a multi-byte character."""
    i = len(data)
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        return i if back >= need else i - back
    return i
