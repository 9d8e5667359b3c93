"""Timeouts for tool calls: `with cut_off_after(seconds): await ...` raises TimeoutError when the
block runs past its deadline, like `asyncio.timeout`, at a fraction of the cost.

`asyncio.timeout` schedules and cancels a timer per use: about 10 us to enter and leave
(measured on the dev VM), the largest single cost of a scripted agent step
(`benchmarks/overhead.py`). Here one watchdog timer per event loop serves every block in flight:
it is set for the earliest deadline, so a block whose deadline is later than one already
watched schedules nothing, and entering or leaving is a set insertion or removal.

Semantics follow asyncio.timeout: at the deadline the task running the block is cancelled; the
block's exit turns that cancellation (and only that one: a cancellation from elsewhere still
propagates) into TimeoutError.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any


class _Watch:
    """The blocks in flight on one loop and the one timer that checks them."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.limits: set[Limit] = set()
        self.handle: asyncio.TimerHandle | None = None

    def add(self, limit: Limit) -> None:
        self.limits.add(limit)
        if self.handle is None or limit.deadline < self.handle.when():
            self._schedule(limit.deadline)

    def _schedule(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        self.handle = None
        now = self.loop.time()
        for limit in [x for x in self.limits if x.deadline <= now]:
            self.limits.discard(limit)
            limit.expired = True
            limit.task.cancel()
        if self.limits:
            self._schedule(min(x.deadline for x in self.limits))


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()


class Limit:
    """One block under a deadline (a sync context manager: entering and leaving never await)."""

    __slots__ = ("seconds", "task", "deadline", "cancelling", "expired", "watch", "__weakref__")

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False

    def __enter__(self) -> Limit:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("cut_off_after() must be used inside a task")
        self.task = task
        self.cancelling = task.cancelling()
        self.deadline = loop.time() + self.seconds
        watch = _watches.get(loop)
        if watch is None:
            watch = _watches[loop] = _Watch(loop)
        self.watch = watch
        watch.add(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.watch.limits.discard(self)  # its timer, if any, finds nothing to do and stops
        if self.expired:  # our cancellation is counted off whatever happened, as asyncio.timeout does
            if self.task.uncancel() <= self.cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError(f"no result after {self.seconds:g} s") from exc


def cut_off_after(seconds: float) -> Limit:
    return Limit(seconds)
