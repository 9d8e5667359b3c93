"""Tool-choice aids for weak local models, measured on BFCL's "multiple" category: how often is
the first call's tool the right one?

Each question offers 2-4 functions; the model must call the right one. Variants (all with the
planners' own prompt for the first turn, and tool_choice=required, so only the choice counts):

- free:        the model chooses freely among the offered functions (under the backend's grammar)
- topk2:       only BM25's top 2 of the offered functions are offered, then free choice
- fewshot:     3 worked examples (task -> call, from other BFCL questions) in the system prompt
- score:       the function is ranked by the model's log-likelihood (`score`) instead of generated
- score/char:  the same, with each score divided by the name's length
- bm25:        no model: BM25's top 1 (a reference point)

    python benchmarks/tool_choice.py -n 50 --data-dir ../shared/evaldata
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from evals.bfcl.data import load_category, to_tool_specs
from toolkit.planner.choice import rank_actions
from toolkit.planner.prompts import system_message
from toolkit.registry import ToolRegistry
from toolkit.retrieval import ToolRetriever
from toolkit.runtime.context import RunContext
from toolkit.runtime.executor import Executor
from toolkit.runtime.trace import TraceRecorder
from toolkit.types import LLMRequest, Message, ToolSpec

VARIANTS = ("free", "topk2", "fewshot", "score", "score/char", "bm25")


def demonstrations(questions, count: int = 3) -> str:
    lines = []
    for q in questions[:count]:
        task = q.messages[-1]["content"]
        name, args = next(iter(q.answers[0].items()))
        args = {k: v[0] for k, v in args.items() if v and v[0] != ""}
        lines.append(f"Task: {task}\nCall: {json.dumps({'name': name, 'arguments': args})}")
    return "Examples of good tool calls:\n" + "\n\n".join(lines)


def context(backend, tools: list[ToolSpec], task: str) -> RunContext:
    registry = ToolRegistry()
    return RunContext(
        task=task,
        task_id="bfcl",
        registry=registry,
        backend=backend,
        executor=Executor(registry),
        tools=tools,
        trace=TraceRecorder(),
    )


async def choose(variant: str, backend, tools: list[ToolSpec], task: str, demos: str) -> str | None:
    if variant == "bm25":
        return ToolRetriever(tools).top_k_names(task, 1)[0]
    if variant == "topk2":
        tools = ToolRetriever(tools).top_k(task, 2)
    messages = [system_message(tools, demos if variant == "fewshot" else ""), Message(role="user", content=task)]
    if variant.startswith("score"):
        ranked = await rank_actions(
            context(backend, tools, task), messages, tools, allow_answer=False, per_char=variant == "score/char"
        )
        return ranked[0][0]
    response = await backend.generate(
        LLMRequest(messages=messages, tools=tools, tool_choice="required", parallel_tool_calls=False)
    )
    return response.tool_calls[0].name if response.tool_calls else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=50, help="questions (from the start of the category)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default="llamacpp:default")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()

    from toolkit.models import load_backend

    questions = load_category("multiple", args.data_dir)
    evaluated, demo_pool = questions[: args.n], questions[-3:]  # demonstrations never come from evaluated questions
    demos = demonstrations(demo_pool)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    backend = load_backend(args.model) if any(v != "bm25" for v in variants) else None
    print(f"BFCL multiple, first {len(evaluated)} questions, model {args.model}", flush=True)
    right = {v: 0 for v in variants}
    seconds = {v: 0.0 for v in variants}
    try:
        # question by question (all variants on one question in a row): the backend reuses the
        # KV cache of the question's prompt prefix across variants
        for i, q in enumerate(evaluated, 1):
            tools = to_tool_specs(q.functions)
            gold = {name for answer in q.answers for name in answer}
            task = " ".join(m.get("content") or "" for m in q.messages if m.get("role") == "user")
            marks = []
            for variant in variants:
                started = time.perf_counter()
                hit = (await choose(variant, backend, tools, task, demos)) in gold
                seconds[variant] += time.perf_counter() - started
                right[variant] += hit
                marks.append(f"{variant}={'+' if hit else '-'}")
            print(f"{i:3d} {q.id}: " + " ".join(marks), flush=True)
        for variant in variants:
            print(
                f"{variant:>11}: right tool {right[variant]}/{len(evaluated)} = {right[variant] / len(evaluated):.0%}   ({seconds[variant]:.0f} s)"
            )
    finally:
        if backend is not None:
            await backend.aclose()


if __name__ == "__main__":
    asyncio.run(main())
