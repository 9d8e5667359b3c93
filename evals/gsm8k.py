"""`toolkit eval gsm8k`: grade-school math with the calculator tool; exact match of the final number.

The engine: the agent as `toolkit run PROBLEM --tools math.calculate --max-steps 6` builds it
(`toolkit.runtime.build.build_agent`: react, its prompt, the backend, the executor running the
calculator). The baseline, in the same invocation: the same model with the raw question and no
tools. Both are given the problem with the same closing instruction (INSTRUCTION); both answers are
reduced to their final number (after "answer is", else the last number of the reply, commas
dropped) and compared with the number after `####` in GSM8K's answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.progress import Progress

from evals.runner import EvalReport, ReportRow, model_label, run_all, suite_dir
from evals.sampling import Selection
from toolkit.models import Backend, load_backend
from toolkit.types import LLMRequest, Message, Sampling

ENGINE_LABEL = "toolkit agent (react + math.calculate)"
TOOLS = ["math.calculate"]
BASELINE_LABEL = "raw prompt, no tools"
INSTRUCTION = "Solve the problem. End your reply with 'The answer is N.' where N is the final number."
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def load_gsm8k(
    data_dir: str | None, limit: int | None = None, selection: Selection | None = None
) -> list[dict[str, Any]]:
    """The selected problems (`limit` alone: the first N), ids `gsm8k_<line index>`."""
    folder = suite_dir(data_dir, "gsm8k", "test.jsonl")
    rows: list[dict[str, Any]] = []
    with (folder / "test.jsonl").open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if line.strip():
                item = json.loads(line)
                rows.append({"id": f"gsm8k_{index}", "question": item["question"], "gold": gold_number(item["answer"])})
    selection = selection or Selection(limit=limit)
    return selection.apply(rows, lambda row: row["id"])


def gold_number(answer: str) -> float:
    return float(answer.split("####")[-1].strip().replace(",", ""))


def final_number(text: str | None) -> float | None:
    """The number a reply ends on: after 'answer is' when present, else the last number."""
    if not text:
        return None
    tail = re.split(r"answer is|answer:|=", text, flags=re.I)[-1]
    for candidate in (tail, text):
        numbers = _NUMBER.findall(candidate)
        if numbers:
            try:
                return float(numbers[-1].replace(",", ""))
            except ValueError:
                continue
    return None


def is_correct(predicted: float | None, gold: float) -> bool:
    return predicted is not None and abs(predicted - gold) < 1e-6 * max(1.0, abs(gold))


async def engine_answer(agent: Any, item: dict[str, Any]) -> dict[str, Any]:
    result = await agent.arun(f"{item['question']}\n\n{INSTRUCTION}", task_id=item["id"])
    predicted = final_number(result.answer)
    return {
        "id": item["id"],
        "system": ENGINE_LABEL,
        "answer": (result.answer or "")[:1000],
        "status": result.status,
        "error": result.error,
        "calls": [c.model_dump(include={"name", "arguments"}) for c in result.calls],
        "predicted": predicted,
        "gold": item["gold"],
        "correct": is_correct(predicted, item["gold"]),
        "seconds": round(result.wall_s, 3),
    }


async def baseline_answer(backend: Backend, item: dict[str, Any]) -> dict[str, Any]:
    request = LLMRequest(
        messages=[Message(role="user", content=f"{item['question']}\n\n{INSTRUCTION}")],
        sampling=Sampling(temperature=0.0, max_tokens=384, seed=0),
        tool_choice="none",
    )
    try:
        response = await backend.generate(request)
        text, error = response.text, response.parse_error
    except Exception as exc:  # noqa: BLE001 - a failed generation is a wrong answer
        text, error = "", f"{type(exc).__name__}: {exc}"
    predicted = final_number(text)
    return {
        "id": item["id"],
        "system": BASELINE_LABEL,
        "answer": text[:1000],
        "error": error,
        "predicted": predicted,
        "gold": item["gold"],
        "correct": is_correct(predicted, item["gold"]),
    }


def make_math_agent(backend: Backend, max_steps: int = 6) -> Any:
    """`toolkit run PROBLEM --tools math.calculate --max-steps N`, on a loaded backend."""
    from toolkit.runtime.build import build_agent

    return build_agent(backend, tools=TOOLS, planner="react", max_steps=max_steps)


async def run_gsm8k(
    selection: Selection | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    progress: Progress | None = None,
    backend: Backend | None = None,
    concurrency: int = 4,
    max_steps: int = 6,
) -> EvalReport:
    selection = selection or Selection(limit=20)
    items = load_gsm8k(data_dir, selection=selection)
    backend = backend or load_backend(model)
    agent = make_math_agent(backend, max_steps)
    try:
        engine_items, engine_s = await run_all(
            "gsm8k · engine", items, lambda i: engine_answer(agent, i), progress, concurrency
        )
        base_items, base_s = await run_all(
            "gsm8k · baseline", items, lambda i: baseline_answer(backend, i), progress, concurrency
        )
    finally:
        await agent.executor.aclose()
        await backend.aclose()
    systems = [ENGINE_LABEL, BASELINE_LABEL]
    rows = [
        ReportRow(
            name="accuracy (exact final number)",
            n=len(items),
            values={
                ENGINE_LABEL: _mean(i["correct"] for i in engine_items),
                BASELINE_LABEL: _mean(i["correct"] for i in base_items),
            },
        ),
        ReportRow(
            name="replies with no number",
            n=len(items),
            values={
                ENGINE_LABEL: _mean(i["predicted"] is None for i in engine_items),
                BASELINE_LABEL: _mean(i["predicted"] is None for i in base_items),
            },
        ),
        ReportRow(
            name="calculator calls per question",
            n=len(items),
            unit="",
            values={ENGINE_LABEL: _mean(len(i["calls"]) for i in engine_items), BASELINE_LABEL: None},
        ),
    ]
    return EvalReport(
        suite="GSM8K (test)",
        model=model_label(model, backend),
        systems=systems,
        rows=rows,
        items=engine_items + base_items,
        wall_s={ENGINE_LABEL: round(engine_s, 2), BASELINE_LABEL: round(base_s, 2)},
        ids=[i["id"] for i in items],
        notes=[
            f"{ENGINE_LABEL}: toolkit.runtime.build.build_agent(model, tools={TOOLS}, planner='react', "
            f"max_steps={max_steps}).arun(<problem + instruction>), i.e. `toolkit run PROBLEM --tools "
            f"math.calculate --max-steps {max_steps}`.",
            f"{selection.describe()} Of the GSM8K test set; final number = after 'answer is', else the last "
            "number of the reply.",
            "The agent's problems ran before the baseline's, on the same backend.",
        ],
    )


def _mean(values: Any) -> float | None:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else None
