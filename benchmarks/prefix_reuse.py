"""Prefix KV reuse on the embedded model: the second step of an agent, with and without reuse.

    python benchmarks/prefix_reuse.py [--model llamacpp:default] [--tools math,search] [--repeat 3]

Step 1 is a tool turn (system prompt + tool docs + task). Step 2 is the same conversation plus the
call and its observation. With reuse, step 2 runs right after step 1 on the same engine, which
keeps step 1's KV cache and evaluates only the new tokens; without reuse, the cache is cleared
first and step 2 evaluates its whole prompt. Prints step 2's prefill time both ways (median of
--repeat runs) and the ratio; the target is at most 0.3x.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.models import load_backend  # noqa: E402
from toolkit.planner.prompts import observation_message, system_message  # noqa: E402
from toolkit.registry import ToolRegistry  # noqa: E402
from toolkit.types import LLMRequest, Message, Observation, Sampling  # noqa: E402

TASK = "What is 12 * (7 + 5)?"


def step_requests(tools: list) -> tuple[LLMRequest, callable]:
    first = LLMRequest(
        messages=[system_message(tools), Message(role="user", content=TASK)],
        tools=tools,
        sampling=Sampling(max_tokens=48),
    )

    def second(response) -> LLMRequest:
        calls = response.tool_calls
        observations = [
            Observation(call_id=c.id, name=c.name, ok=True, text='{"exact": "144", "decimal": "144"}') for c in calls
        ]
        messages = [
            *first.messages,
            Message(role="assistant", content=response.text, tool_calls=calls),
            *[observation_message(o) for o in observations],
        ]
        return first.model_copy(update={"messages": messages})

    return first, second


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llamacpp:default")
    parser.add_argument("--tools", default="math,search")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    registry = ToolRegistry.default()
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    tools = [s for s in registry.specs() if s.name.split(".", 1)[0] in wanted]
    backend = load_backend(args.model)
    first, make_second = step_requests(tools)
    with_reuse, without_reuse = [], []
    try:
        for _ in range(args.repeat):
            backend.engine.clear_cache()
            step1 = await backend.generate(first)
            second = make_second(step1)
            reused = await backend.generate(second)  # step 1's KV is still in the cache
            backend.engine.clear_cache()
            cold = await backend.generate(second)
            with_reuse.append(reused)
            without_reuse.append(cold)
    finally:
        await backend.aclose()
    warm = statistics.median(r.timings.prefill_s for r in with_reuse)
    cold = statistics.median(r.timings.prefill_s for r in without_reuse)
    r, c = with_reuse[-1], without_reuse[-1]
    print(
        f"model {backend.name}; tools offered: {len(tools)}; step 1: {step1.usage.prompt_tokens} prompt tokens, "
        f"called {[x.name for x in step1.tool_calls] or 'no tool'}"
    )
    print(f"step 2 prompt: {r.usage.prompt_tokens} tokens")
    print(f"  with prefix reuse:    {r.usage.cached_tokens:5d} cached, prefill {warm:.3f} s")
    print(f"  without prefix reuse: {c.usage.cached_tokens:5d} cached, prefill {cold:.3f} s")
    print(f"ratio (with / without): {warm / cold:.3f}x  (target <= 0.3x)  [median of {args.repeat}]")


if __name__ == "__main__":
    asyncio.run(main())
