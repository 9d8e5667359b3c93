"""Continuous batching on the embedded model: aggregate decode throughput of concurrent agents.

    python benchmarks/batched_decoding.py [--model llamacpp:default] [--tasks 8] [--max-tokens 48]

The same tasks (a shared system prompt, a different question each, greedy decoding) run one
after another with batching off (the serial baseline), then with 1, 2, 4 and 8 in flight at once
with batching on. Every run starts from an empty KV cache. Aggregate decode tokens/s = completion
tokens of all tasks / wall time. The greedy outputs of every run are asserted equal to the serial
ones. Target: >= 2.5x the serial throughput at 8 concurrent agents on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.models import load_backend  # noqa: E402
from toolkit.types import LLMRequest, Message, Sampling  # noqa: E402

SYSTEM = (
    "You are a helpful assistant working for a research team. Answer the question in a few clear "
    "sentences, with concrete facts. Do not use lists or headings."
)
QUESTIONS = [
    "Why do leaves change colour in autumn?",
    "How does a refrigerator keep food cold?",
    "What causes the tides in the ocean?",
    "Why is the sky blue during the day?",
    "How do bees make honey?",
    "What is the water cycle?",
    "How does a bicycle stay upright when moving?",
    "Why do we have seasons on Earth?",
    "How do vaccines train the immune system?",
    "What makes a volcano erupt?",
    "How do airplanes generate lift?",
    "Why does bread rise when it is baked?",
    "How does a compass find north?",
    "What is photosynthesis?",
    "Why does ice float on water?",
    "How do plants drink water?",
]


async def run(backend, requests, concurrency: int | None) -> tuple[list[str], int, float]:
    """concurrency None: serial with batching off; else at most `concurrency` in flight, batched."""
    backend.engine.clear_cache()
    backend.batching = concurrency is not None
    gate = asyncio.Semaphore(concurrency or 1)

    async def one(request):
        async with gate:
            return await backend.generate(request)

    started = time.perf_counter()
    if concurrency is None:
        results = [await backend.generate(r) for r in requests]
    else:
        results = await asyncio.gather(*(one(r) for r in requests))
    wall = time.perf_counter() - started
    return [r.text for r in results], sum(r.usage.completion_tokens for r in results), wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llamacpp:default")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all cores)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    backend = load_backend(args.model, max_sequences=max(levels), n_threads=args.threads)
    requests = [
        LLMRequest(
            messages=[Message(role="system", content=SYSTEM), Message(role="user", content=q)],
            sampling=Sampling(max_tokens=args.max_tokens, temperature=0.0),
        )
        for q in (QUESTIONS * (args.tasks // len(QUESTIONS) + 1))[: args.tasks]
    ]
    try:
        await run(backend, requests[:1], None)  # warm-up: page the weights in
        serial_texts, serial_tokens, serial_wall = await run(backend, requests, None)
        rows = [("serial (batching off)", serial_tokens, serial_wall, True)]
        for level in levels:
            texts, tokens, wall = await run(backend, requests, level)
            rows.append((f"{level} concurrent", tokens, wall, texts == serial_texts))
    finally:
        await backend.aclose()
    base = serial_tokens / serial_wall
    print(
        f"model {backend.name}; {len(requests)} tasks, max {args.max_tokens} tokens each, greedy; "
        f"{os.cpu_count()} CPU cores"
    )
    print(f"{'run':<24}{'tokens':>8}{'wall s':>9}{'tok/s':>9}{'vs serial':>11}  outputs")
    for name, tokens, wall, same in rows:
        print(
            f"{name:<24}{tokens:>8}{wall:>9.2f}{tokens / wall:>9.1f}{tokens / wall / base:>10.2f}x  "
            f"{'identical' if same else 'DIFFERENT'}"
        )
    assert all(same for *_, same in rows), "batched greedy outputs differ from serial decoding"


if __name__ == "__main__":
    asyncio.run(main())
