"""Sequence slots of the llama.cpp engine: which sequence a request decodes in, which cached
prefix it starts from, and when the KV cache starts over.

Each slot is a sequence id plus the tokens whose KV it holds. A request extends an idle slot in
place when its prompt starts with everything that slot holds; otherwise it takes a slot not used
yet and gets the longest cached prefix of its prompt copied in (`llama_memory_seq_cp`: in a
unified cache this only tags the prefix cells with the new sequence id; no data moves).

Why no cell is ever freed while requests run: ggml's row-by-row flash attention (the kernel that
makes batched decoding equal serial decoding, see the engine's `_step`) sums over a sequence's
cells in cell order. llama.cpp places new cells from its `head`, which only moves forward, but
freeing cells moves it back to the lowest freed one, so a running sequence's next cells would
land before its earlier ones and its numbers, and sometimes a greedy choice, would change.

So the cache lives in epochs. Within an epoch cells are only added, at the head, in the order
the engine decodes them; every sequence's cells are in position order. When a request does not
fit in the cells left, or no unused slot is left, a new epoch starts between two decode steps:
the running requests' sequences and the most recently used cached prefixes are saved
(`llama_state_seq_get_data`), the cache is cleared, and they are restored one after another from
cell 0 (`llama_state_seq_set_data`), each in position order again, with the same values, so the
running requests go on as if nothing happened. A prefix two restored sequences share is restored
twice, which is what keeping each in order costs; when the running sequences restored so would
leave no room for the request, the engine lets them finish first.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass, field

import llama_cpp
import numpy as np

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    busy: bool = False
    last_used: float = 0.0
    unused: bool = True  # not taken by a request in this epoch (a restored prefix counts as used)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


class SlotTable:
    def __init__(self, ctx: llama_cpp.llama_context_p, n_slots: int):
        self.ctx = ctx
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.slots = [Slot(seq=i) for i in range(n_slots)]
        self.placed = 0  # cells placed in this epoch: llama.cpp's head, since nothing is freed
        self.epochs = 1
        self.running_restored = 0  # running sequences moved into a new epoch (for tests)

    def best_prefix(self, prompt: list[int], cap: int) -> tuple[int, Slot]:
        """The longest cached prefix of `prompt` (at most `cap` tokens) and the slot holding it;
        an idle holder wins a tie (it may be extended in place)."""
        holders = [(min(common_prefix(s.tokens, prompt), cap), s) for s in self.slots]
        return max(holders, key=lambda h: (h[0], not h[1].busy))

    def can_take(self, best: Slot, best_len: int) -> bool:
        return self._extends(best, best_len) or any(s.unused for s in self.slots)

    @staticmethod
    def _extends(best: Slot, best_len: int) -> bool:
        return not best.busy and 0 < best_len == len(best.tokens)

    def take(self, prompt: list[int], best: Slot, best_len: int) -> Slot:
        """The slot a new request decodes in, holding the first `best_len` tokens of `prompt`
        (call `can_take` first)."""
        if self._extends(best, best_len):
            slot = best
        else:
            slot = next(s for s in self.slots if s.unused)
            if best_len > 0:
                llama_cpp.llama_memory_seq_cp(self.memory, best.seq, slot.seq, 0, best_len)
                slot.tokens = list(prompt[:best_len])
        slot.busy, slot.unused = True, False
        return slot

    def new_epoch(self, keep_slots: int, keep_cells: int) -> list[Slot]:
        """Start the cache over from cell 0 with every running sequence restored, and up to
        `keep_slots` of the most recently used idle prefixes in `keep_cells` cells. Returns the
        running slots llama.cpp could not save or restore (their requests cannot go on)."""
        running = [s for s in self.slots if s.busy]
        kept: list[Slot] = []
        for s in sorted((s for s in self.slots if s.tokens and not s.busy), key=lambda s: -s.last_used):
            if len(kept) == keep_slots:
                break
            if any(common_prefix(s.tokens, k.tokens) == len(s.tokens) for k in kept):
                continue  # a kept slot holds all of it
            if sum(len(k.tokens) for k in kept) + len(s.tokens) <= keep_cells:
                kept.append(s)
        saved = [(s, s.tokens, self._save(s.seq)) for s in running + kept]
        self.forget_all()
        self.epochs += 1
        lost = []
        for slot, tokens, state in saved:
            if state is None or llama_cpp.llama_state_seq_set_data(self.ctx, state, len(state), slot.seq) == 0:
                log.warning("llama.cpp could not move a sequence of %d tokens into the new epoch", len(tokens))
                llama_cpp.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)  # the last cells placed: no hole
                if slot.busy:
                    lost.append(slot)
                continue
            slot.tokens, slot.unused = tokens, False
            self.placed += len(tokens)
            self.running_restored += slot.busy
        return lost

    def _save(self, seq: int) -> ctypes.Array | None:
        size = llama_cpp.llama_state_seq_get_size(self.ctx, seq)
        buf = (ctypes.c_uint8 * size)()
        return buf if llama_cpp.llama_state_seq_get_data(self.ctx, buf, size, seq) == size else None

    def forget_all(self) -> None:
        # the metadata is enough: cells not in use are masked out, and their old values are finite
        llama_cpp.llama_memory_clear(self.memory, False)
        for slot in self.slots:
            slot.tokens, slot.unused = [], True
        self.placed = 0

    def drop_idle(self) -> bool:
        """Free the least recently used idle slot's cells: the last resort when llama_decode
        finds no room, which the cell accounting should never allow. Its freed cells may take
        running requests' next tokens out of position order, so the caller ends the epoch."""
        idle = [s for s in self.slots if not s.busy and s.tokens]
        if not idle:
            return False
        slot = min(idle, key=lambda s: s.last_used)
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq, 0, -1)
        slot.tokens = []
        return True
