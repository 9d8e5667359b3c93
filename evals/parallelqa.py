"""`toolkit eval parallelqa`: LLMCompiler's ParallelQA with search and math tools, dag vs react.

Both systems are the agent as `toolkit run QUESTION --tools search,math.calculate --planner P
--max-steps 6 --approve auto` builds it (`toolkit.runtime.build.build_agent`), with the search
tool's settings pointed at the local index below (as a user's config `tools: {search: {backend:
local, index: ...}}` would): react is the default planner, dag the planner this suite is about.
`--approve auto` because search is annotated open_world, which a non-interactive run denies.

Each question compares or combines figures about two or more entities (e.g. "If the Mariana
Trench were 20% shallower and the Puerto Rico Trench 20% deeper, which would be shallower?"), so
its searches can run in parallel: the dag planner should be faster than react at equal accuracy.

Search is offline: Wikipedia can't be reached here, so the search tool's local BM25 backend
indexes `evals/parallelqa_corpus/`, a fixture corpus written for this eval: one short page per
entity of all 113 questions (56 pages), each stating the figures its questions need (public
figures, in our own words, not copied text). Every question can be answered from it:
tests/test_parallelqa_corpus.py checks that a plain query finds each page a question needs and
that the question's arithmetic on those pages' figures reproduces its label (the worked
questions are in tests/fixtures/parallelqa_questions.py). Math is the `math.calculate` action.

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
from evals.sampling import Selection
from toolkit.models import Backend, load_backend

CORPUS = Path(__file__).resolve().parent / "parallelqa_corpus"
PLANNERS = ("dag", "react")
TOOLS = ["search", "math.calculate"]
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


def load_parallelqa(
    data_dir: str | None, limit: int | None = None, selection: Selection | None = None
) -> list[dict[str, Any]]:
    """The selected questions (`limit` alone: the first N); ids are the dataset's own ("1".."113")."""
    folder = suite_dir(data_dir, "llmcompiler", "parallelqa_dataset.json")
    rows = json.loads((folder / "parallelqa_dataset.json").read_text(encoding="utf-8"))
    return (selection or Selection(limit=limit)).apply(rows, lambda row: str(row["id"]))


def search_settings(index_dir: Path) -> dict[str, dict[str, Any]]:
    """Tool settings that point search at a local index of the fixture corpus (built here)."""
    from toolkit.tools.search.local import build_index

    index = index_dir / "parallelqa.sqlite"
    build_index(CORPUS, index)
    return {"search": {"backend": "local", "index": str(index)}}


def build_registry(index_dir: Path) -> Any:
    """Built-in tools, with search pointed at a local index of the fixture corpus."""
    from toolkit.registry import ToolRegistry

    return ToolRegistry.default([], tool_settings=search_settings(index_dir))


def build_planner_agent(backend: Backend, planner: str, settings: dict[str, dict[str, Any]], max_steps: int) -> Any:
    """The agent `toolkit run Q --tools search,math.calculate --planner P --max-steps N --approve auto`
    builds, on a loaded backend, search pointed at the local index (`settings`)."""
    from toolkit.runtime.build import build_agent

    return build_agent(
        backend, tools=TOOLS, planner=planner, max_steps=max_steps, approve="auto", tool_settings=settings
    )


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
    selection: Selection | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    progress: Progress | None = None,
    backend: Backend | None = None,
    max_steps: int = 6,
) -> EvalReport:
    """Both planners on the same questions, one question at a time (wall time is the point)."""
    selection = selection or Selection(limit=20)
    items = load_parallelqa(data_dir, selection=selection)
    backend = backend or load_backend(model)
    systems = [f"{p} planner" for p in PLANNERS]
    results: list[dict[str, Any]] = []
    wall: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="parallelqa-index-") as tmp:
        settings = search_settings(Path(tmp))
        try:
            for planner, label in zip(PLANNERS, systems, strict=True):
                agent = build_planner_agent(backend, planner, settings, max_steps)
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
    covered = sorted(corpus_entities())
    notes = [
        f"Each planner: toolkit.runtime.build.build_agent(model, tools={TOOLS}, planner=P, max_steps={max_steps}, "
        "approve='auto', tool_settings=<search: local index>).arun(<question + instruction>), i.e. `toolkit run "
        f"QUESTION --tools search,math.calculate --planner P --max-steps {max_steps} --approve auto`.",
        f"{selection.describe()} Of LLMCompiler's ParallelQA questions.",
        "Search is a local BM25 index over evals/parallelqa_corpus/, a fixture corpus written for this eval "
        f"({len(covered)} pages); it is not Wikipedia, and a question about entities it lacks finds nothing.",
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
        ids=[str(i["id"]) for i in items],
        notes=notes,
    )


def corpus_entities() -> list[str]:
    """The pages of the fixture corpus (one per entity)."""
    return [p.stem for p in CORPUS.glob("*.md")]


def _mean_len(results: list[dict[str, Any]], system: str, key: str) -> float | None:
    values = [len(r[key]) for r in results if r["system"] == system]
    return sum(values) / len(values) if values else None


def _mean_bool(results: list[dict[str, Any]], system: str, test: Any) -> float | None:
    values = [bool(test(r)) for r in results if r["system"] == system]
    return sum(values) / len(values) if values else None
