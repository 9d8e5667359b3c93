"""vLLM smoke test and batching benchmark, for a machine with a GPU and vLLM installed.

Checks that the `vllm` backend works against real vLLM (in-process AsyncLLM) and measures what
continuous batching buys: the same work done by one agent at a time vs N agents at once.

    pip install 'toolkit[vllm]'
    python benchmarks/vllm_smoke.py --model Qwen/Qwen2.5-1.5B-Instruct --agents 16
    python benchmarks/vllm_smoke.py --standin      # no GPU: wiring only, against tests/vllm_standin.py

Two measurements, both in this one process and engine:
1. raw decoding: N chat requests one after another vs N concurrently (completion tokens/s);
2. agent tasks: N arithmetic tasks with the math tool, serially vs with N agents in flight
   (tasks/s; tool calls are JSON-schema constrained, so unparseable calls should be 0).
The ratio printed last is the batching speed-up (expect several x on a GPU for N >= 8).
The --standin figures say nothing about speed; they only exercise the code path.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit import Agent  # noqa: E402
from toolkit.models.vllm import VLLMBackend  # noqa: E402
from toolkit.types import LLMRequest, Message, Sampling  # noqa: E402

PROMPTS = [
    "Explain in two sentences why the sky is blue.",
    "Write a haiku about batching.",
    "List three uses of a hash map.",
    "What is the capital of Australia, and why not Sydney?",
]
TASKS = [
    f"What is {a} * ({b} + {c})?" for a, b, c in ((12, 7, 5), (3, 4, 5), (17, 2, 9), (8, 8, 8), (21, 1, 2), (6, 5, 4))
]


class _Patch:
    """monkeypatch.setitem, for installing the stand-in outside pytest."""

    @staticmethod
    def setitem(mapping, key, value) -> None:
        mapping[key] = value


def make_backend(args: argparse.Namespace) -> VLLMBackend:
    if args.standin:
        from tests import vllm_standin

        vllm_standin.install(_Patch())
        backend = VLLMBackend.from_model(args.model or "standin/model")
        backend.engine.responder = lambda prompt, params: (
            '{"final_answer": "done"}' if params.structured_outputs is not None else "word " * args.max_tokens
        )
        return backend
    options = {"max_model_len": args.max_model_len, "gpu_memory_utilization": args.gpu_memory_utilization}
    return VLLMBackend.from_model(args.model, **options)


async def raw_decoding(backend: VLLMBackend, n: int, max_tokens: int) -> tuple[float, float]:
    requests = [
        LLMRequest(
            messages=[Message(role="user", content=PROMPTS[i % len(PROMPTS)] + f" (#{i})")],
            sampling=Sampling(max_tokens=max_tokens, temperature=0.0),
        )
        for i in range(n)
    ]
    started = time.perf_counter()
    serial = [await backend.generate(r) for r in requests]
    serial_s = time.perf_counter() - started
    started = time.perf_counter()
    batched = await asyncio.gather(*(backend.generate(r) for r in requests))
    batched_s = time.perf_counter() - started
    tokens = sum(r.usage.completion_tokens for r in serial)
    tokens_b = sum(r.usage.completion_tokens for r in batched)
    print(
        f"raw decoding, {n} requests: serial {tokens / serial_s:8.1f} tok/s ({serial_s:.2f} s)   "
        f"concurrent {tokens_b / batched_s:8.1f} tok/s ({batched_s:.2f} s)"
    )
    return tokens / serial_s, tokens_b / batched_s


async def agent_tasks(backend: VLLMBackend, n: int) -> tuple[float, float]:
    agent = Agent(model=backend, tool_names=["math"], max_steps=4)
    tasks = [TASKS[i % len(TASKS)] for i in range(n)]
    started = time.perf_counter()
    serial = [await agent.arun(t) for t in tasks]
    serial_s = time.perf_counter() - started
    started = time.perf_counter()
    batched = [r async for r in agent.arun_many(tasks, concurrency=n)]
    batched_s = time.perf_counter() - started
    for label, results in (("serial", serial), ("concurrent", batched)):
        ok = sum(r.status == "ok" for r in results)
        calls = sum(len(r.calls) for r in results)
        print(f"  {label:10s}: {ok}/{len(results)} answered, {calls} tool calls")
    print(
        f"agent tasks, {n} tasks: serial {n / serial_s:6.2f} tasks/s ({serial_s:.2f} s)   "
        f"{n} agents at once {n / batched_s:6.2f} tasks/s ({batched_s:.2f} s)"
    )
    return n / serial_s, n / batched_s


async def main(args: argparse.Namespace) -> None:
    backend = make_backend(args)
    try:
        await backend.generate(
            LLMRequest(messages=[Message(role="user", content="Hello")], sampling=Sampling(max_tokens=4))
        )  # warm-up
        raw_serial, raw_batched = await raw_decoding(backend, args.agents, args.max_tokens)
        task_serial, task_batched = await agent_tasks(backend, args.agents)
    finally:
        await backend.aclose()
    print(
        f"batching speed-up at {args.agents} concurrent: decoding {raw_batched / raw_serial:.2f}x, "
        f"agent tasks {task_batched / task_serial:.2f}x" + ("   (stand-in: not a speed figure)" if args.standin else "")
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a vLLM model (hub id or local directory)")
    parser.add_argument("--agents", type=int, default=16, help="concurrent requests / agents (default 16)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument(
        "--standin", action="store_true", help="run against tests/vllm_standin.py (no GPU; wiring only)"
    )
    args = parser.parse_args()
    if not args.model and not args.standin:
        parser.error("--model is required (or --standin for a dry run without a GPU)")
    asyncio.run(main(args))
