"""Sequence slots of the llama.cpp engine: which sequence a request decodes in, which cached
prefix it starts from, and which cached prefixes to forget when the KV cache fills up.

Each slot is a sequence id plus the tokens whose KV it holds. A new request goes to an empty slot
and gets the longest cached prefix of its prompt copied in (`llama_memory_seq_cp`: in a unified
cache this only tags the prefix cells with the new sequence id; no data moves). Only when no slot
is empty does a request truncate an idle slot in place or evict the least recently used one.

Why prefer copying to truncating: removing cells leaves holes, and llama.cpp fills holes first,
so a running sequence's next token can land in a cell before its earlier ones. Attention then
visits that sequence's cells in a different order than it would have alone, which changes the
floating-point sums in the last bits and can flip a greedy choice. With spare slots, no cell is
removed in normal operation and batched decoding reproduces serial decoding exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import llama_cpp


@dataclass(eq=False)
class Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    busy: bool = False
    last_used: float = 0.0


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


class SlotTable:
    def __init__(self, memory: llama_cpp.llama_memory_t, n_slots: int):
        self.memory = memory
        self.slots = [Slot(seq=i) for i in range(n_slots)]

    def best_prefix(self, prompt: list[int], cap: int) -> tuple[int, Slot]:
        """The longest cached prefix of `prompt` (at most `cap` tokens) and the slot holding it;
        an idle holder wins a tie (it can be reused in place)."""
        holders = [(min(common_prefix(s.tokens, prompt), cap), s) for s in self.slots]
        return max(holders, key=lambda h: (h[0], not h[1].busy))

    def held_cells(self) -> int:
        """Roughly how many KV cells the slots hold, busy or idle: a prefix several slots share
        (copied from one another) is counted once."""
        total = 0
        counted: list[Slot] = []
        for s in self.slots:
            if not s.tokens:
                continue
            shared = max((common_prefix(s.tokens, o.tokens) for o in counted), default=0)
            total += len(s.tokens) - shared
            counted.append(s)
        return total

    def evict_one(self, keep: Slot | None) -> bool:
        idle = [s for s in self.slots if not s.busy and s.tokens and s is not keep]
        if not idle:
            return False
        self.clear(min(idle, key=lambda s: s.last_used))
        return True

    def clear(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq, 0, -1)
        slot.tokens = []

    def forget_all(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)
        for slot in self.slots:
            slot.tokens = []

    def take(self, prompt: list[int], best: Slot, best_len: int) -> tuple[Slot, int]:
        """A slot for a new request holding the first `keep` tokens of `prompt`: (slot, keep)."""
        empty = [s for s in self.slots if not s.busy and not s.tokens]
        if empty:
            slot = empty[0]
        elif not best.busy and best_len > 0:  # no spare slot: truncate the holder in place
            llama_cpp.llama_memory_seq_rm(self.memory, best.seq, best_len, -1)
            best.tokens = best.tokens[:best_len]
            best.busy = True
            return best, best_len
        else:
            idle = [s for s in self.slots if not s.busy]
            slot = min(idle, key=lambda s: s.last_used)
            self.clear(slot)
        if best_len > 0:
            llama_cpp.llama_memory_seq_cp(self.memory, best.seq, slot.seq, 0, best_len)
            slot.tokens = list(prompt[:best_len])
        slot.busy = True
        return slot, best_len
