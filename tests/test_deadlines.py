"""cut_off_after: asyncio.timeout's behaviour (TimeoutError at the deadline, other cancellations
pass through) with one watchdog timer per loop instead of one timer per block."""

from __future__ import annotations

import asyncio
import time

import pytest

from toolkit.runtime.deadlines import _watches, cut_off_after


async def test_a_block_past_its_deadline_raises_timeout_error_on_time():
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        with cut_off_after(0.2):
            await asyncio.sleep(10)
    assert 0.15 < time.perf_counter() - started < 2
    await asyncio.sleep(0)  # no cancellation left pending on the task
    assert asyncio.current_task().cancelling() == 0


async def test_a_block_that_finishes_in_time_keeps_its_result_and_leaves_no_timer_work():
    with cut_off_after(5):
        value = await asyncio.sleep(0.01, result="done")
    assert value == "done"
    watch = _watches[asyncio.get_running_loop()]
    assert not watch.limits


async def test_an_earlier_deadline_entered_later_still_fires_first():
    async def limited(seconds: float, sleep: float) -> str:
        try:
            with cut_off_after(seconds):
                await asyncio.sleep(sleep)
            return "finished"
        except TimeoutError:
            return "timed out"

    long = asyncio.ensure_future(limited(30, 0.5))  # the watchdog is set for 30 s first
    await asyncio.sleep(0)
    started = time.perf_counter()
    assert await limited(0.1, 10) == "timed out"
    assert time.perf_counter() - started < 2
    assert await long == "finished"


async def test_many_blocks_each_get_their_own_verdict():
    async def one(i: int) -> str:
        try:
            with cut_off_after(0.2 if i % 2 else 5):
                await asyncio.sleep(1 if i % 2 else 0.05)
            return "ok"
        except TimeoutError:
            return "timeout"

    results = await asyncio.gather(*(one(i) for i in range(50)))
    assert results == ["ok" if i % 2 == 0 else "timeout" for i in range(50)]


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout():
    async def worker():
        with cut_off_after(10):
            await asyncio.sleep(10)

    task = asyncio.ensure_future(worker())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_arriving_with_the_deadline_still_propagates():
    # cancelled from outside after the deadline fired: the caller's cancel must win, as with asyncio.timeout
    async def stubborn():
        with cut_off_after(0.05):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                asyncio.current_task().cancel()  # an outside cancel lands while handling ours
                await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.ensure_future(stubborn())


def test_each_event_loop_has_its_own_watchdog():
    async def once() -> str:
        try:
            with cut_off_after(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "finished"

    assert asyncio.run(once()) == "timed out"
    assert asyncio.run(once()) == "timed out"  # a fresh loop, a fresh watch
