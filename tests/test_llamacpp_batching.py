"""Continuous batching in the llamacpp engine, on the real default GGUF: requests in flight are
decoded together, greedy outputs equal serial decoding, a shared prefix is evaluated once and
copied, requests join and leave mid-flight, cancellation, and the switch that turns it off."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_cpp")

from toolkit.models.llamacpp.backend import LlamaCppBackend  # noqa: E402
from toolkit.types import LLMRequest, Message, Sampling, ToolSpec  # noqa: E402

pytestmark = pytest.mark.llama

SYSTEM = "You are a careful assistant. Answer in one short sentence. " * 4
TASKS = ["Name a fruit.", "What colour is the sky?", "Say hi to Bob.", "Name a planet."]
CALCULATE = ToolSpec(
    name="math.calculate",
    description="Evaluate an arithmetic expression exactly.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)


@pytest.fixture(scope="session")
def engine_backend():
    b = LlamaCppBackend.from_model_string("llamacpp", "default", n_ctx=4096, max_sequences=4)
    yield b
    asyncio.run(b.aclose())


def request(task: str, max_tokens: int = 20, tools: list[ToolSpec] | None = None) -> LLMRequest:
    return LLMRequest(
        messages=[Message(role="system", content=SYSTEM), Message(role="user", content=task)],
        tools=tools or [],
        sampling=Sampling(max_tokens=max_tokens),
    )


def run(backend: LlamaCppBackend, requests: list[LLMRequest], batching: bool):
    """All requests at once (batching) or one after another (serial), from an empty KV cache."""
    backend.engine.clear_cache()
    backend.engine.max_batch_sequences = 0
    backend.batching = batching

    async def go():
        if batching:
            return await asyncio.gather(*(backend.generate(r) for r in requests))
        return [await backend.generate(r) for r in requests]

    try:
        return asyncio.run(go())
    finally:
        backend.batching = True


def test_batched_greedy_text_equals_serial(engine_backend):
    requests = [request(t) for t in TASKS]
    serial = run(engine_backend, requests, batching=False)
    assert engine_backend.engine.max_batch_sequences == 1
    batched = run(engine_backend, requests, batching=True)
    assert engine_backend.engine.max_batch_sequences >= 2  # they really were decoded together
    assert [r.text for r in batched] == [r.text for r in serial]
    assert all(r.usage.completion_tokens > 0 for r in batched)


def test_batched_tool_calls_equal_serial(engine_backend):
    requests = [request(f"What is {a} * {b}?", max_tokens=48, tools=[CALCULATE]) for a, b in [(3, 4), (12, 9), (7, 7)]]
    serial = run(engine_backend, requests, batching=False)
    batched = run(engine_backend, requests, batching=True)
    as_calls = lambda rs: [[(c.name, c.arguments) for c in r.tool_calls] or r.text for r in rs]  # noqa: E731
    assert as_calls(batched) == as_calls(serial)
    assert all(r.parse_error is None for r in batched)


def test_shared_prefix_is_evaluated_once_and_copied(engine_backend):
    requests = [request(t, max_tokens=4) for t in TASKS]
    results = run(engine_backend, requests, batching=True)
    shared = len(
        engine_backend.prompt_tokens(LLMRequest(messages=[Message(role="system", content=SYSTEM)]), with_tools=False)
    )
    copied = [r.usage.cached_tokens for r in results]
    assert sorted(copied)[0] == 0  # the first evaluates it ...
    assert sum(c >= shared - 12 for c in copied) >= len(TASKS) - 1  # ... the others copy its KV


def test_requests_join_while_others_decode(engine_backend):
    engine = engine_backend.engine
    engine.max_batch_sequences = 0

    async def go():
        long = asyncio.create_task(engine_backend.generate(request("Tell a long story about a cat.", max_tokens=40)))
        while engine.decode_calls == 0 or not engine._active:
            await asyncio.sleep(0.01)
        calls_before = engine.decode_calls
        short = await engine_backend.generate(request("Name a fruit.", max_tokens=4))
        return await long, short, calls_before

    long, short, _ = asyncio.run(go())
    assert long.usage.completion_tokens > short.usage.completion_tokens > 0
    assert engine.max_batch_sequences >= 2


def test_cancelled_request_frees_its_sequence(engine_backend):
    async def go():
        doomed = asyncio.create_task(engine_backend.generate(request("Count from one to a hundred.", max_tokens=200)))
        await asyncio.sleep(0.5)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return await engine_backend.generate(request("Name a fruit.", max_tokens=4))

    after = asyncio.run(go())
    assert after.usage.completion_tokens > 0
    assert not any(s.busy for s in engine_backend.engine.slots)


def test_a_long_prompt_after_cached_prefixes_starts_a_new_epoch_instead_of_overflowing():
    """Two idle slots sharing a 300-token prefix hold ~330 cells; a 700-token prompt then does
    not fit in the 1,024-cell cache beside them, so the engine starts a new epoch (keeping what
    fits in half the cache) before admitting it. (An old estimate counted the shared prefix zero
    times, the prompt was admitted, and llama_decode failed with 'no KV slot': NESTFUL, 13 of 20.)"""
    from toolkit.models.llamacpp.engine import Job

    backend = LlamaCppBackend.from_model_string("llamacpp", "default", n_ctx=1024, max_sequences=2)
    engine = backend.engine
    words = engine.tokenize("the quick brown fox jumps over the lazy dog " * 80)
    other = engine.tokenize("seven green apples fell from a tall old tree " * 160)
    prefix, long_prompt = words[:300], other[:700]
    assert len(long_prompt) == 700

    async def go():
        a = await backend.run_job(Job(prompt=prefix + engine.tokenize(" apple"), max_tokens=8))
        b = await backend.run_job(Job(prompt=prefix + engine.tokenize(" banana"), max_tokens=8))
        c = await backend.run_job(Job(prompt=long_prompt, max_tokens=10))
        return a, b, c

    try:
        a, b, c = asyncio.run(go())
    finally:
        asyncio.run(backend.aclose())
    assert b.cached_tokens >= 300  # b copied a's prefix: two idle slots share it
    assert c.finish_reason in ("stop", "length"), c.error
    assert engine.kv_full_retries == 0  # admitted in a new epoch, not rescued by a retry
    assert engine.table.epochs == 2


def test_a_stream_sent_true_stops_decoding_and_still_ends_with_the_response(engine_backend):
    async def go():
        stream = engine_backend.stream(request("Count from one to a hundred.", max_tokens=60))
        pieces, piece = [], await anext(stream)
        while isinstance(piece, str):
            pieces.append(piece)
            piece = await stream.asend(len(pieces) >= 3)
        return pieces, piece

    pieces, response = asyncio.run(go())
    assert 3 <= response.usage.completion_tokens <= 5  # stopped at the next step, not at 60
    assert response.text == "".join(pieces)
    assert not any(s.busy for s in engine_backend.engine.slots)
