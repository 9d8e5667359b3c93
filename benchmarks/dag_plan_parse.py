"""Does the embedded model's DAG plan parse on every run? (grammar-constrained decoding)

Runs N tasks (default: all 20 below) with `--planner dag` on the embedded model and the built-in
math tool, and reports per task whether the plan parsed (complete JSON, steps valid against the
plan schema), how many steps it had and what the answer was. Whatever the plans' quality: a
135M-parameter model writes odd plans; what must hold is that they parse.

    python benchmarks/dag_plan_parse.py                 # in-process, one model (KV cache shared)
    python benchmarks/dag_plan_parse.py --cli -n 3      # each task through `toolkit run --planner dag`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from toolkit.types import TraceEvent

TASKS = [
    "What is 17 times 23?",
    "What is 2 to the power 20?",
    "What is the square root of 1764?",
    "Add 1234 and 5678, then divide the result by 2.",
    "What is 15% of 240?",
    "Compute 3 factorial plus 4 factorial.",
    "What is 100 divided by 8?",
    "What is the sum of 45, 55 and 100?",
    "Multiply 12 by 12 and subtract 44.",
    "What is 7 cubed?",
    "What is 81 divided by 9, times 3?",
    "Is 97 a prime number?",
    "What is the greatest common divisor of 48 and 180?",
    "What is 1/3 plus 1/6?",
    "Compute 2 times pi, to 5 digits.",
    "What is 999 minus 333?",
    "What is 6 squared plus 8 squared?",
    "What is the square root of 2 times the square root of 8?",
    "What is 250 times 4, plus 1?",
    "What is 10 to the power 6 divided by 1000?",
]
TOOLS = "math.calculate"
JSON_ERRORS = ("not valid JSON", "JSON is incomplete", 'must be an object with a "steps" list')


CUT_OFF = "ran past"  # the planner stopped a step that never closed; its complete steps were kept


def plan_outcome(trace: list[TraceEvent]) -> tuple[bool, list[int]]:
    """(every plan of the run parsed, step counts of its plans) from a task's trace."""
    plans = [e for e in trace if e.kind == "plan" and (e.text or "").startswith("dag plan:")]
    parsed = bool(plans) and not any(marker in (e.text or "") for e in plans for marker in JSON_ERRORS)
    return parsed, [len(e.plan or []) for e in plans]


def plan_problems(trace: list[TraceEvent]) -> str:
    """What the planner said about the plans (errors) and what the model wrote, for failed runs."""
    notes = [e.text for e in trace if e.kind == "plan" and e.text and "errors:" in e.text]
    outputs = [repr((e.text or "")[:300]) for e in trace if e.kind == "model_call"][:1]
    return " | ".join(notes + outputs)


def was_cut_off(trace: list[TraceEvent]) -> bool:
    return any(e.kind == "plan" and CUT_OFF in (e.text or "") for e in trace)


async def run_in_process(tasks: list[str], model: str, max_replans: int) -> list[dict]:
    from toolkit.models import load_backend
    from toolkit.runtime.agent import Agent

    backend = load_backend(model)
    agent = Agent(model=backend, tool_names=[TOOLS], planner="dag", planner_options={"max_replans": max_replans})
    rows = []
    try:
        for task in tasks:
            started = time.perf_counter()
            result = await agent.arun(task)
            parsed, steps = plan_outcome(result.trace)
            rows.append(
                {
                    "task": task,
                    "parsed": parsed,
                    "cut": was_cut_off(result.trace),
                    "steps": steps,
                    "status": result.status,
                    "answer": result.answer,
                    "s": time.perf_counter() - started,
                    "why": "" if parsed else plan_problems(result.trace),
                }
            )
            show(len(rows), rows[-1])
    finally:
        await agent.aclose()
        await backend.aclose()
    return rows


def run_cli(tasks: list[str], model: str) -> list[dict]:
    rows = []
    for task in tasks:
        started = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "toolkit",
                "run",
                task,
                "--planner",
                "dag",
                "--model",
                model,
                "--tools",
                TOOLS,
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        try:
            data = json.loads(out.stdout)
        except json.JSONDecodeError:
            rows.append(
                {
                    "task": task,
                    "parsed": False,
                    "steps": [],
                    "status": f"exit {out.returncode}",
                    "answer": out.stderr[-200:],
                    "s": time.perf_counter() - started,
                }
            )
            show(len(rows), rows[-1])
            continue
        trace = [TraceEvent.model_validate(e) for e in data["trace"]]
        parsed, steps = plan_outcome(trace)
        rows.append(
            {
                "task": task,
                "parsed": parsed,
                "cut": was_cut_off(trace),
                "steps": steps,
                "status": data["status"],
                "answer": data.get("answer"),
                "s": time.perf_counter() - started,
                "why": "" if parsed else plan_problems(trace),
            }
        )
        show(len(rows), rows[-1])
    return rows


def show(i: int, row: dict) -> None:
    answer = " ".join(str(row["answer"] or "").split())[:60]
    outcome = ("parsed (cut off)" if row.get("cut") else "parsed") if row["parsed"] else "NOT PARSED"
    print(
        f"{i:2d}. plan {outcome}  steps={row['steps']}  {row['status']:>9}  {row['s']:6.1f} s  {row['task'][:45]!r} -> {answer!r}",
        flush=True,
    )
    if row.get("why"):
        print(f"    why: {row['why']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=len(TASKS), help="how many of the 20 tasks")
    parser.add_argument("--model", default="llamacpp:default")
    parser.add_argument(
        "--cli", action="store_true", help="run each task as `toolkit run --planner dag` (a process each)"
    )
    parser.add_argument(
        "--max-replans", type=int, default=0, help="in-process runs only (the CLI uses the planner's default)"
    )
    args = parser.parse_args()
    tasks = TASKS[: args.n]
    rows = run_cli(tasks, args.model) if args.cli else asyncio.run(run_in_process(tasks, args.model, args.max_replans))
    ok = sum(r["parsed"] for r in rows)
    cut = sum(r["parsed"] and r.get("cut", False) for r in rows)
    print(
        f"plans parsed: {ok}/{len(rows)} runs ({'cli' if args.cli else 'in-process'}, {args.model}); "
        f"{cut} of them after the planner cut off a step that never closed (its complete steps kept)"
    )


if __name__ == "__main__":
    main()
