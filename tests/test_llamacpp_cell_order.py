"""A prompt's numbers do not depend on the engine's history.

ggml's row-by-row flash-attention kernel (the one the engine keeps so that batched == serial)
sums over a sequence's KV cells in cell order. llama.cpp puts new cells from its `head`, and
freeing cells moves `head` back to the lowest freed one, so an eviction while requests run used
to put their next cells before their earlier ones: the same prompt, its prefix reused from the
cache, scored differently once other prompts had filled the cache, and greedy outputs differed
from run to run under concurrency (BFCL --limit 20: 6 of 40 answers). The engine now never frees
a cell within an epoch and starts a new epoch (cached prefixes saved, the cache cleared, the
prefixes restored from cell 0) when the cache is full (toolkit/models/llamacpp/slots.py)."""

from __future__ import annotations

import random
import threading

import pytest

pytest.importorskip("llama_cpp")

from toolkit.models.llamacpp.engine import EngineConfig, Job, LlamaEngine  # noqa: E402
from toolkit.models.llamacpp.files import resolve_model  # noqa: E402

pytestmark = pytest.mark.llama


def run(engine: LlamaEngine, job: Job):
    done, out = threading.Event(), {}
    job.on_done = lambda r: (out.setdefault("result", r), done.set())
    engine.submit(job)
    assert done.wait(300)
    return out["result"]


def test_a_prompt_scores_the_same_wherever_its_cells_sit():
    path = str(resolve_model("llamacpp", "default").path)
    rng = random.Random(1)
    words = lambda n: [rng.randrange(1000, 40000) for _ in range(n)]  # noqa: E731
    prefix = words(150)
    prompt = prefix + words(150)
    config = EngineConfig(n_ctx=1024, max_sequences=4, cache_slots=8)

    fresh = LlamaEngine(path, config)
    try:
        expected = run(fresh, Job(prompt=list(prompt), score_from=160)).logprob
    finally:
        fresh.close()

    busy = LlamaEngine(path, config)
    try:
        for n in (180, 310, 260):  # other prompts
            run(busy, Job(prompt=words(n), max_tokens=2))
        run(busy, Job(prompt=prefix + words(20), max_tokens=2))  # the prefix, cached
        for n in (240, 190):  # the 1,024-cell cache is full: a new epoch, the prefix restored
            run(busy, Job(prompt=words(n), max_tokens=2))
        again = run(busy, Job(prompt=list(prompt), score_from=160))
        epochs = busy.table.epochs
    finally:
        busy.close()
    assert epochs == 2
    assert again.cached_tokens >= len(prefix)  # the prefix was reused, not evaluated again
    assert again.logprob == expected


def test_concurrent_requests_through_several_epochs_score_as_alone():
    """Twelve prompts on three shared prefixes, four at a time, through a cache that fills up
    three times over (new epochs begin while others run, their sequences saved and restored):
    each scores exactly what it scores alone in an empty cache."""
    path = str(resolve_model("llamacpp", "default").path)
    rng = random.Random(2)
    words = lambda n: [rng.randrange(1000, 40000) for _ in range(n)]  # noqa: E731
    prefixes = [words(100) for _ in range(3)]
    prompts = [prefixes[i % 3] + words(rng.randrange(100, 200)) for i in range(12)]
    config = EngineConfig(n_ctx=1024, max_sequences=4)

    alone = LlamaEngine(path, config)
    try:
        expected = []
        for p in prompts:
            alone.clear_cache()
            expected.append(run(alone, Job(prompt=list(p), score_from=120)).logprob)
    finally:
        alone.close()

    busy = LlamaEngine(path, config)
    try:
        done, results = threading.Semaphore(0), {}
        for i, p in enumerate(prompts):
            job = Job(prompt=list(p), score_from=120)
            job.on_done = lambda r, i=i: (results.__setitem__(i, r), done.release())
            busy.submit(job)
        for _ in prompts:
            assert done.acquire(timeout=300)
        epochs, moved, max_batch = busy.table.epochs, busy.table.running_restored, busy.max_batch_sequences
    finally:
        busy.close()
    assert epochs >= 3 and max_batch >= 2
    assert moved >= 1  # some epochs began under running requests, their sequences restored
    assert sum(results[i].cached_tokens >= 100 for i in results) >= 3  # prefixes were reused
    assert [results[i].logprob for i in range(len(prompts))] == expected
