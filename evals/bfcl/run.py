"""`toolkit eval bfcl`: the engine answers BFCL questions, the AST checker scores them.

BFCL's functions become ToolSpecs (never executed). Each question is one model request with the
tools attached (`LLMRequest(tools=..., tool_choice="auto")`): whatever calls come back are the
answer, no call at all is the answer "none of these functions fits" (irrelevance). The same
questions go to the baseline (evals/baselines.py) in the same invocation.
"""

from __future__ import annotations

from typing import Any

from rich.progress import Progress

from evals.baselines import engine_and_baseline
from evals.bfcl.checker import check
from evals.bfcl.data import CATEGORIES, Question, load_category, to_messages, to_tool_specs
from evals.bfcl.engine import ENGINE_ANSWERS, ENGINE_MODES
from evals.runner import EvalReport, ReportRow, model_label, run_all, run_systems, systems_note
from toolkit.models import Backend
from toolkit.types import LLMRequest, LLMResponse, Message, Sampling

ENGINE_LABEL = "toolkit engine"
FINAL_ANSWER_CUT = "arguments of final_answer were not complete JSON"  # llamacpp backend's message

SYSTEM_PROMPT = (
    "You are an expert in composing function calls. You are given a question and a set of functions. "
    "Call the function(s) that answer the question, with argument values taken from the question; "
    "make several calls when the question asks for several things. "
    "If none of the functions can answer the question, do not call any: reply in plain words."
)


def parse_categories(text: str) -> list[str]:
    categories = [c.strip() for c in text.split(",") if c.strip()]
    if not categories:
        raise ValueError("no category given")
    return categories


def bfcl_request(question: Question, max_tokens: int = 256) -> LLMRequest:
    messages = [Message(role="system", content=SYSTEM_PROMPT), *to_messages(question)]
    return LLMRequest(
        messages=messages,
        tools=to_tool_specs(question.functions),
        tool_choice="auto",
        parallel_tool_calls=True,
        # BFCL scores calls only: a model that answers in words instead has said "no call", and
        # decoding the words would only spend time (the baseline's backend ignores this)
        sampling=Sampling(temperature=0.0, max_tokens=max_tokens, seed=0, answer_max_tokens=0),
    )


async def answer_question(
    system: str, backend: Backend, question: Question, max_calls: int = 1, mode: str = "tool-turns"
) -> dict[str, Any]:
    """One question through one system, scored. Never raises: a failure is an unparseable answer."""
    try:
        if mode == "tool-turns" and max_calls <= 1:  # as the backend answers, all its calls kept
            response = await backend.generate(bfcl_request(question))
        else:
            response = await ENGINE_ANSWERS[mode](backend, bfcl_request(question), max_calls)
    except Exception as exc:  # noqa: BLE001 - a crashed generation is scored, not fatal
        response = LLMResponse(finish_reason="error", parse_error=f"{type(exc).__name__}: {exc}")
    if response.parse_error and not response.tool_calls and FINAL_ANSWER_CUT in response.parse_error:
        # the model chose to answer in words (no call) and its words ran past max_tokens: BFCL only
        # scores calls, so this is a "no call" answer, not an unreadable one
        response = response.model_copy(update={"parse_error": None})
    unparseable = response.parse_error is not None
    calls = [] if unparseable else [{c.name: c.arguments} for c in response.tool_calls]
    verdict = check(question.category, question.functions, calls, question.answers)
    return {
        "id": question.id,
        "category": question.category,
        "system": system,
        "calls": calls,
        "text": response.text[:2000],
        "unparseable": unparseable,
        "parse_error": response.parse_error,
        "valid": verdict.valid,
        "error_type": verdict.error_type,
        "seconds": round(response.timings.total_s, 3),
    }


def score_rows(items: list[dict[str, Any]], categories: list[str], systems: list[str]) -> list[ReportRow]:
    rows = []
    for category in [*categories, None]:
        selected = [i for i in items if category is None or i["category"] == category]
        values = {}
        for system in systems:
            mine = [i for i in selected if i["system"] == system]
            values[system] = sum(i["valid"] for i in mine) / len(mine) if mine else None
        n = len(selected) // max(1, len(systems))
        rows.append(ReportRow(name=category or "overall", n=n, values=values))
    for name, key in (("unparseable outputs", "unparseable"), ("questions with no call", None)):
        values = {}
        for system in systems:
            mine = [i for i in items if i["system"] == system]
            hits = [i for i in mine if (i[key] if key else not i["calls"] and not i["unparseable"])]
            values[system] = len(hits) / len(mine) if mine else None
        rows.append(ReportRow(name=name, n=len(items) // max(1, len(systems)), values=values))
    return rows


async def run_bfcl(
    categories: list[str],
    limit: int | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    progress: Progress | None = None,
    engine: Backend | None = None,
    baseline: Backend | None = None,
    concurrency: int = 4,
    max_calls: int = 4,
    mode: str = "gated",
    side_by_side: bool = True,
) -> EvalReport:
    """Score the engine and its baseline on the first `limit` questions of each category.
    `max_calls`: the engine's budget of calls per question (1: a single model request).
    `side_by_side`: the engine and the baseline answer at the same time, on half the cores each
    (False: the baseline after the engine, each on all cores, for wall times measured alone)."""
    if mode not in ENGINE_MODES:
        raise ValueError(f"unknown engine mode {mode!r}; choose one of {', '.join(ENGINE_MODES)}")
    unknown = [c for c in categories if c not in CATEGORIES and not c.startswith("live_")]
    if unknown:
        raise ValueError(f"unsupported BFCL categories {unknown}; choose from {', '.join(CATEGORIES)}")
    questions = [q for c in categories for q in load_category(c, data_dir, limit)]
    engine, baseline = engine_and_baseline(model, side_by_side, engine, baseline)
    systems = [ENGINE_LABEL, baseline.name]
    runs = [
        (
            label,
            lambda b=backend, s=label, m=budget, h=how: run_all(
                f"bfcl · {s}", questions, lambda q: answer_question(s, b, q, m, h), progress, concurrency
            ),
        )
        for label, backend, budget, how in (
            (ENGINE_LABEL, engine, max_calls, mode),
            (baseline.name, baseline, 1, "tool-turns"),
        )
    ]
    try:
        items, wall = await run_systems(runs, side_by_side)
    finally:
        await baseline.aclose()
        await engine.aclose()
    report = EvalReport(
        suite="BFCL (AST)",
        model=model_label(model, engine),
        systems=systems,
        rows=score_rows(items, categories, systems),
        items=items,
        wall_s=wall,
        notes=[
            "Scored by evals/bfcl/checker.py, a re-implementation of BFCL's AST checker "
            "(agreement with the official one: evals/bfcl_official_compare.py).",
            f"First {limit} question(s) of each category." if limit else "All questions of each category.",
            f"Engine mode: {mode}, at most {max_calls} call(s) per question.",
            systems_note(side_by_side),
        ],
    )
    return report
