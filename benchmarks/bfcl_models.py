"""Candidate embedded models on a BFCL subset with the constrained pipeline: accuracy and speed.

    python benchmarks/bfcl_models.py [--limit 20] [--models smollm2,gemma3-270m] [--data-dir D]

Each question is one request to the llamacpp backend (two-stage grammar-constrained decoding:
the action, then its arguments), scored with evals/bfcl's re-implementation of BFCL's AST
checker. `--concurrency N` questions are in flight at once (decoded together by the engine's
continuous batching); s/question is the wall time divided by the number of questions, latency
is per request. Prints per model: accuracy per category, unparseable outputs (must be 0),
s/question, decode tokens/s, prompt tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.bfcl.checker import check  # noqa: E402
from evals.bfcl.data import load_category  # noqa: E402
from evals.bfcl.run import bfcl_request  # noqa: E402
from toolkit.models.llamacpp.backend import LlamaCppBackend  # noqa: E402

CATEGORIES = ("simple_python", "multiple")


async def measure(model: str, limit: int, data_dir: str | None, concurrency: int) -> dict:
    started = time.perf_counter()
    backend = LlamaCppBackend.from_model_string("llamacpp", model)
    load_s = time.perf_counter() - started
    questions = [q for category in CATEGORIES for q in load_category(category, data_dir, limit)]
    gate = asyncio.Semaphore(concurrency)

    async def answer(q):
        async with gate:
            response = await backend.generate(bfcl_request(q, max_tokens=256))
        calls = [{c.name: c.arguments} for c in response.tool_calls]
        verdict = check(q.category, q.functions, calls, q.answers)
        return {
            "category": q.category,
            "valid": verdict.valid and response.parse_error is None,
            "unparseable": response.parse_error is not None,
            "no_call": not response.tool_calls and response.parse_error is None,
            "seconds": response.timings.total_s,
            "rate": response.timings.decode_tokens_per_s,
            "prompt": response.usage.prompt_tokens,
            "completion": response.usage.completion_tokens,
            "error": response.parse_error,
        }

    try:
        started = time.perf_counter()
        rows = await asyncio.gather(*(answer(q) for q in questions))
        wall = time.perf_counter() - started
    finally:
        await backend.aclose()
    return {
        "model": model,
        "label": backend.model.label,
        "load_s": load_s,
        "rows": rows,
        "wall": wall,
        "concurrency": concurrency,
    }


def report(result: dict) -> None:
    rows = result["rows"]
    print(
        f"\n{result['model']} ({result['label']}), loaded in {result['load_s']:.1f} s, "
        f"{len(rows)} questions, {result['concurrency']} in flight, wall {result['wall']:.1f} s"
    )
    for category in CATEGORIES:
        mine = [r for r in rows if r["category"] == category]
        ok = sum(r["valid"] for r in mine)
        print(f"  {category:<14} accuracy {ok}/{len(mine)} = {ok / max(len(mine), 1):.0%}")
    ok = sum(r["valid"] for r in rows)
    print(f"  {'overall':<14} accuracy {ok}/{len(rows)} = {ok / max(len(rows), 1):.0%}")
    print(f"  unparseable tool calls: {sum(r['unparseable'] for r in rows)}/{len(rows)}")
    print(f"  answered without a call: {sum(r['no_call'] for r in rows)}/{len(rows)}")
    rates = [r["rate"] for r in rows if r["rate"]]
    print(
        f"  s/question (wall / questions): {result['wall'] / max(len(rows), 1):.2f}; "
        f"latency per request: median {statistics.median(r['seconds'] for r in rows):.2f} s"
    )
    print(f"  decode tokens/s: mean {statistics.mean(rates):.1f}" if rates else "  decode tokens/s: n/a")
    print(
        f"  tokens/question: prompt {statistics.mean(r['prompt'] for r in rows):.0f}, "
        f"completion {statistics.mean(r['completion'] for r in rows):.1f}"
    )
    for r in rows:
        if r["unparseable"]:
            print(f"    unparseable: {r['error']}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--models", default="smollm2,gemma3-270m")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        report(await measure(model, args.limit, args.data_dir, args.concurrency))


if __name__ == "__main__":
    asyncio.run(main())
