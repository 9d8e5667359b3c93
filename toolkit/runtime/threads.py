"""A pool of daemon threads for sync tool functions.

asyncio's default executor is joined when the loop closes, so one hung sync tool would keep
`toolkit run` from exiting long after the executor gave up on it. Daemon threads can be abandoned:
a timed-out call's thread finishes (or not) on its own, and the process still exits.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class DaemonThreadPool:
    def __init__(self, max_idle: int = 8):
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._max_idle = max_idle

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1  # an idle worker is reserved for this item
            else:
                threading.Thread(target=self._work, name="toolkit-tool", daemon=True).start()
        self._queue.put((fn, future))
        return future

    def _work(self) -> None:
        while True:
            fn, future = self._queue.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                    future.set_exception(exc)
            with self._lock:
                if self._idle >= self._max_idle:
                    return
                self._idle += 1


_pool = DaemonThreadPool()


async def run_in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.wrap_future(_pool.submit(fn))
