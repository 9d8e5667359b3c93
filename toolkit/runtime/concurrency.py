"""Bounded concurrency over a lazy iterable: at most `limit` coroutines in flight, results as they finish.

Why not `asyncio.as_completed([...all...])` behind a semaphore: that creates a task per item up
front (a thousand tasks, or a whole generator drained into memory, before the first result), and
`asyncio.wait` on a large set re-registers a callback on every pending task at each completion.
Here items are drawn from the iterable only when a slot frees, and each finished task is handed
over through a queue, so memory is bounded by `limit` and each completion costs O(1).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded_as_completed(
    items: Iterable[T], fn: Callable[[T], Awaitable[R]], limit: int
) -> AsyncGenerator[R, None]:
    """Yield `await fn(item)` for every item, in order of completion, with at most `limit` running.

    An exception raised by `fn` propagates at its turn (the others are then cancelled). Closing the
    generator (`contextlib.aclosing`, or its finalization after a `break`) cancels the tasks still
    in flight and waits for them.
    """
    if limit < 1:
        raise ValueError(f"concurrency must be at least 1, not {limit}")
    iterator = iter(items)
    finished: asyncio.Queue[asyncio.Future[R]] = asyncio.Queue()
    in_flight: set[asyncio.Future[R]] = set()
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(in_flight) < limit:
            try:
                item = next(iterator)
            except StopIteration:
                exhausted = True
                return
            future = asyncio.ensure_future(fn(item))
            in_flight.add(future)
            future.add_done_callback(finished.put_nowait)

    try:
        fill()
        while in_flight:
            future = await finished.get()
            in_flight.discard(future)
            fill()  # start the next item before handing this result over: the slot never idles
            yield future.result()
    finally:
        for future in in_flight:
            future.cancel()
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
