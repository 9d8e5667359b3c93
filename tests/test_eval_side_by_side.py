"""The engine and its baseline answer side by side (the default), or one after the other."""

from __future__ import annotations

import asyncio

import pytest

from evals.baselines import engine_and_baseline, split_cores
from evals.runner import run_systems


def passes(order: list[str], events: dict[str, asyncio.Event]):
    """Two systems' passes; each one's first item waits until the other pass has started."""

    def make(label: str, other: str):
        async def run():
            order.append(f"{label} starts")
            events[label].set()
            await asyncio.wait_for(events[other].wait(), timeout=2)
            order.append(f"{label} ends")
            return [f"{label} result"], 1.5

        return run

    return [("engine", make("engine", "baseline")), ("baseline", make("baseline", "engine"))]


def test_side_by_side_runs_both_passes_at_once():
    async def main():
        order: list[str] = []
        events = {"engine": asyncio.Event(), "baseline": asyncio.Event()}
        results, wall = await run_systems(passes(order, events), side_by_side=True)
        return order, results, wall

    order, results, wall = asyncio.run(main())
    assert order[:2] == ["engine starts", "baseline starts"]
    assert results == ["engine result", "baseline result"]  # the engine's results first, as before
    assert wall == {"engine": 1.5, "baseline": 1.5}


def test_one_at_a_time_finishes_the_engine_before_the_baseline_starts():
    async def main():
        order: list[str] = []
        events = {"engine": asyncio.Event(), "baseline": asyncio.Event()}
        events["baseline"].set()  # else the engine's pass would wait for a baseline that never starts
        await run_systems(passes(order, events), side_by_side=False)
        return order

    assert asyncio.run(main()) == ["engine starts", "engine ends", "baseline starts", "baseline ends"]


def test_the_cores_are_split_between_the_two(monkeypatch):
    for cores, split in ((1, (1, 1)), (2, (1, 1)), (3, (1, 2)), (8, (4, 4))):
        monkeypatch.setattr("os.cpu_count", lambda c=cores: c)
        assert split_cores() == split


@pytest.mark.llama
def test_side_by_side_gives_each_llama_context_its_share_of_the_cores():
    pytest.importorskip("llama_cpp")
    engine_threads, baseline_threads = split_cores()
    engine, baseline = engine_and_baseline(None, side_by_side=True)
    try:
        assert engine.engine.config.n_threads == engine_threads
        assert baseline.llm.n_threads == baseline_threads
    finally:
        asyncio.run(baseline.aclose())
        asyncio.run(engine.aclose())
