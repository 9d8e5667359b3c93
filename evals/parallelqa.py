"""`toolkit eval parallelqa`: LLMCompiler's ParallelQA with search and math tools, dag vs react.

Each question compares or combines figures about two or more entities (e.g. "If the Mariana
Trench were 20% shallower and the Puerto Rico Trench 20% deeper, which would be shallower?"), so
its searches can run in parallel: the dag planner should be faster than react at equal accuracy.

Search is offline: Wikipedia can't be reached here, so the search tool's local BM25 backend
indexes `evals/parallelqa_corpus/`, a fixture corpus written for this eval (one short page per
entity of the first 20 questions, each stating the figure the question needs; rounded public
figures, not copied text). Questions past the 20th mostly find nothing in it. Math is the
`math.calculate` action.

Scoring follows LLMCompiler's `compare_answer`: a numeric label is right when the answer is within
10% of it; a text label after SQuAD-style normalisation (lowercase, no punctuation or articles).
Our agents answer in sentences, not with LLMCompiler's `Finish(answer)`, so the answer compared is
the last number of the reply (numeric labels) and a reply containing the normalised label counts
for text labels.
"""

from __future__ import annotations

import functools
import json
import re
import string
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import Progress

from evals.runner import EvalReport, ReportRow, model_label, run_all, suite_dir
from toolkit.models import Backend, load_backend

CORPUS = Path(__file__).resolve().parent / "parallelqa_corpus"
PLANNERS = ("dag", "react")
INSTRUCTION = "Answer briefly: give the entity name, or the number, as the final answer."
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation, as LLMCompiler uses it."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def compare_answer(answer: str | None, label: str) -> bool:
    """LLMCompiler's rule (numbers within 10%, else normalised text), on the reply's answer part."""
    if not answer:
        return False
    if _is_number(label):
        numbers = _NUMBER.findall(answer)
        if not numbers:
            return False
        value, target = float(numbers[-1].replace(",", "")), float(label)
        return target * 0.9 < value < target * 1.1 if target > 0 else target * 1.1 < value < target * 0.9
    wanted, got = normalize_answer(label), normalize_answer(answer)
    return bool(wanted) and (got == wanted or re.search(rf"\b{re.escape(wanted)}\b", got) is not None)


def load_parallelqa(data_dir: str | None, limit: int | None) -> list[dict[str, Any]]:
    folder = suite_dir(data_dir, "llmcompiler", "parallelqa_dataset.json")
    rows = json.loads((folder / "parallelqa_dataset.json").read_text(encoding="utf-8"))
    return rows[: limit or None]


def build_registry(index_dir: Path) -> Any:
    """Built-in tools, with search pointed at a local index of the fixture corpus."""
    from toolkit.registry import ToolRegistry
    from toolkit.tools.search.local import build_index

    index = index_dir / "parallelqa.sqlite"
    build_index(CORPUS, index)
    return ToolRegistry.default([], tool_settings={"search": {"backend": "local", "index": str(index)}})


async def answer(agent: Any, planner: str, item: dict[str, Any]) -> dict[str, Any]:
    result = await agent.arun(f"{item['question']}\n{INSTRUCTION}", task_id=f"{planner}-{item['id']}")
    return {
        "id": item["id"],
        "system": planner,
        "branches": item.get("branch"),
        "answer": (result.answer or "")[:1000],
        "label": item["answer"],
        "correct": compare_answer(result.answer, str(item["answer"])),
        "status": result.status,
        "error": result.error,
        "calls": [c.model_dump(include={"name", "arguments"}) for c in result.calls],
        "model_calls": sum(1 for e in result.trace if e.kind == "model_call"),
        "seconds": round(result.wall_s, 3),
    }


async def run_parallelqa(
    limit: int | None = 20,
    model: str | None = None,
    data_dir: str | None = None,
    progress: Progress | None = None,
    backend: Backend | None = None,
    max_steps: int = 6,
) -> EvalReport:
    """Both planners on the same questions, one question at a time (wall time is the point)."""
    from toolkit.runtime.agent import Agent

    items = load_parallelqa(data_dir, limit)
    backend = backend or load_backend(model)
    systems = [f"{p} planner" for p in PLANNERS]
    results: list[dict[str, Any]] = []
    wall: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="parallelqa-index-") as tmp:
        registry = build_registry(Path(tmp))
        try:
            for planner, label in zip(PLANNERS, systems, strict=True):
                agent = Agent(
                    model=backend,
                    tools=registry,
                    tool_names=["search", "math.calculate"],
                    planner=planner,
                    max_steps=max_steps,
                )
                try:
                    done, seconds = await run_all(
                        f"parallelqa · {label}", items, functools.partial(answer, agent, label), progress, 1
                    )
                finally:
                    await agent.executor.aclose()
                results.extend(done)
                wall[label] = round(seconds, 2)
        finally:
            await backend.aclose()

    def mean(system: str, key: str) -> float | None:
        values = [float(r[key]) for r in results if r["system"] == system]
        return sum(values) / len(values) if values else None

    rows = [
        ReportRow(name="accuracy (LLMCompiler rule)", n=len(items), values={s: mean(s, "correct") for s in systems}),
        ReportRow(
            name="mean wall time per question", n=len(items), unit="s", values={s: mean(s, "seconds") for s in systems}
        ),
        ReportRow(
            name="tool calls per question",
            n=len(items),
            unit="",
            values={s: _mean_len(results, s, "calls") for s in systems},
        ),
        ReportRow(
            name="model calls per question", n=len(items), unit="", values={s: mean(s, "model_calls") for s in systems}
        ),
        ReportRow(
            name="tasks ending in error / step budget",
            n=len(items),
            values={s: _mean_bool(results, s, lambda r: r["status"] != "ok") for s in systems},
        ),
    ]
    react, dag = wall.get(systems[1]), wall.get(systems[0])
    notes = [
        "Search is a local BM25 index over evals/parallelqa_corpus/, a fixture corpus written for this eval "
        "(one page per entity of the first 20 questions); it is not Wikipedia.",
        "Text answers count when the reply contains the normalised label; numeric ones when its last number is within 10%.",
    ]
    if react and dag:
        notes.append(f"Wall time react / dag: {react / dag:.2f}x (same questions, one at a time).")
    return EvalReport(
        suite="ParallelQA (LLMCompiler)",
        model=model_label(model, backend),
        systems=systems,
        rows=rows,
        items=results,
        wall_s=wall,
        notes=notes,
    )


def _mean_len(results: list[dict[str, Any]], system: str, key: str) -> float | None:
    values = [len(r[key]) for r in results if r["system"] == system]
    return sum(values) / len(values) if values else None


def _mean_bool(results: list[dict[str, Any]], system: str, test: Any) -> float | None:
    values = [bool(test(r)) for r in results if r["system"] == system]
    return sum(values) / len(values) if values else None
