"""`toolkit eval bfcl`: the agent users run answers BFCL questions, the AST checker scores them.

The engine's answer to a question is what `toolkit run QUESTION --functions F --dry-run` does with
F = the question's functions: `build_agent` (toolkit/runtime/build.py, the function `toolkit run`
builds its Agent with) declares them as functions without an implementation and builds the Agent
with the default planner (react), its prompt, the backend and the executor in dry-run mode; the
calls of the dry run (the agent's first turn that calls) are the answer, and no call is the answer
"none of these functions fits" (irrelevance). Nothing here talks to the model for the engine.

The baseline, in the same invocation: the same model through llama-cpp-python's
`chatml-function-calling` (evals/baselines.py), asked the question in one request with the tools
attached and a system prompt saying what BFCL wants (`baseline_request`), as before.
"""

from __future__ import annotations

from typing import Any

from rich.progress import Progress

from evals.baselines import engine_and_baseline
from evals.bfcl.checker import check
from evals.bfcl.data import (
    SUPPORTED,
    Question,
    load_category,
    task_text,
    to_function_definitions,
    to_messages,
    to_tool_specs,
)
from evals.runner import EvalReport, ReportRow, model_label, run_all, run_systems, systems_note
from evals.sampling import Selection, UnknownIds
from toolkit.config import Config, load_config
from toolkit.models import Backend
from toolkit.planner import make_planner
from toolkit.runtime.build import build_agent
from toolkit.types import ErrorCode, LLMRequest, LLMResponse, Message, Sampling, TaskResult

ENGINE_LABEL = "toolkit agent"
FINAL_ANSWER_CUT = "arguments of final_answer were not complete JSON"  # llamacpp backend's message
DEFAULT_CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_irrelevance",
)

# the baseline's prompt (unchanged from earlier runs, so its figures stay comparable)
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
    unknown = [c for c in categories if c not in SUPPORTED]
    if unknown:
        raise ValueError(f"unsupported BFCL categories {unknown}; choose from {', '.join(SUPPORTED)}")
    return categories


def select_questions(categories: list[str], selection: Selection, data_dir: str | None) -> list[Question]:
    """The selection applied to each category (a sample of N is N per category); `--ids` may name
    questions of any of the categories, and every id must be found in one."""
    chosen = [
        q for c in categories for q in selection.apply(load_category(c, data_dir), lambda q: q.id, strict_ids=False)
    ]
    if selection.ids:
        missing = set(selection.ids) - {q.id for q in chosen}
        if missing:
            raise UnknownIds(f"unknown id(s) in categories {', '.join(categories)}: {', '.join(sorted(missing))}")
    return chosen


def bfcl_request(question: Question, max_tokens: int = 256) -> LLMRequest:
    """The baseline's request: the question with its functions attached, in one model call."""
    messages = [Message(role="system", content=SYSTEM_PROMPT), *to_messages(question)]
    return LLMRequest(
        messages=messages,
        tools=to_tool_specs(question.functions),
        tool_choice="auto",
        parallel_tool_calls=True,
        sampling=Sampling(temperature=0.0, max_tokens=max_tokens, seed=0, answer_max_tokens=0),
    )


baseline_request = bfcl_request


def scored(system: str, question: Question, calls: list[dict[str, Any]], unparseable: bool, **details: Any) -> dict:
    verdict = check(question.category, question.functions, [] if unparseable else calls, question.answers)
    return {
        "id": question.id,
        "category": question.category,
        "system": system,
        "calls": [] if unparseable else calls,
        "unparseable": unparseable,
        "valid": verdict.valid,
        "error_type": verdict.error_type,
        **details,
    }


async def agent_answer(
    backend: Backend, question: Question, config: Config, planner: str, planner_options: dict[str, Any]
) -> dict[str, Any]:
    """One question through the agent in a dry run, scored. Never raises."""
    try:
        agent = build_agent(
            backend,
            functions=to_function_definitions(question.functions),
            planner=planner,
            planner_options=planner_options,
            dry_run=True,
            config=config,
        )
    except ValueError as exc:  # a function BFCL defines that can't be declared: scored, reported
        return scored(ENGINE_LABEL, question, [], True, text="", parse_error=f"setup: {exc}", status="error")
    try:
        result = await agent.arun(task_text(question), task_id=question.id)
    finally:
        await agent.executor.aclose()  # not agent.aclose(): the backend is shared by every question
    unparseable, details = _outcome(result)
    return scored(ENGINE_LABEL, question, [{c.name: c.arguments} for c in result.calls], unparseable, **details)


def _outcome(result: TaskResult) -> tuple[bool, dict[str, Any]]:
    """(unparseable, details): unparseable when the run ended in an error without calls; the
    details say how many model outputs could not be parsed on the way, and what the run cost."""
    parse_errors = [o.message or o.text for o in result.observations if o.error == ErrorCode.parse_error]
    unparseable = not result.calls and result.status != "ok"
    return unparseable, {
        "text": (result.answer or result.error or "")[:2000],
        "status": result.status,
        "parse_error": (result.error if unparseable else None) or (parse_errors[-1] if parse_errors else None),
        "parse_errors": len(parse_errors),
        "model_calls": sum(1 for e in result.trace if e.kind == "model_call"),
        "tokens": result.usage.prompt_tokens + result.usage.completion_tokens,
        "seconds": round(result.wall_s, 3),
    }


async def baseline_answer(baseline: Backend, question: Question) -> dict[str, Any]:
    """One question through the baseline in one request, scored. Never raises."""
    try:
        response = await baseline.generate(bfcl_request(question))
    except Exception as exc:  # noqa: BLE001 - a crashed generation is scored, not fatal
        response = LLMResponse(finish_reason="error", parse_error=f"{type(exc).__name__}: {exc}")
    if response.parse_error and not response.tool_calls and FINAL_ANSWER_CUT in response.parse_error:
        response = response.model_copy(update={"parse_error": None})  # words past max_tokens: no call
    unparseable = response.parse_error is not None
    calls = [{c.name: c.arguments} for c in response.tool_calls]
    return scored(
        baseline.name,
        question,
        calls,
        unparseable,
        text=response.text[:2000],
        parse_error=response.parse_error,
        seconds=round(response.timings.total_s, 3),
    )


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
    engine = [i for i in items if i["system"] == systems[0]]
    if engine and "model_calls" in engine[0]:
        per_question = {systems[0]: sum(i.get("model_calls", 0) for i in engine) / len(engine)}
        rows.append(ReportRow(name="model calls per question", n=len(engine), unit="", values=per_question))
    return rows


async def run_bfcl(
    categories: list[str],
    selection: Selection | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    progress: Progress | None = None,
    engine: Backend | None = None,
    baseline: Backend | None = None,
    concurrency: int = 4,
    planner: str = "react",
    planner_options: dict[str, Any] | None = None,
    side_by_side: bool = True,
) -> EvalReport:
    """Score the agent (dry run) and its baseline on the selected questions of each category.
    `side_by_side`: the two answer at the same time, on half the cores each (False: the baseline
    after the agent, each on all cores, for wall times measured alone)."""
    selection = selection or Selection()
    questions = select_questions(categories, selection, data_dir)
    config = load_config()
    options = planner_options or {}
    make_planner(planner, **options)  # unknown planner or options: a clear error before any model loads
    engine, baseline = engine_and_baseline(model, side_by_side, engine, baseline)
    label = ENGINE_LABEL
    runs = [
        (
            label,
            lambda: run_all(
                f"bfcl · {label}",
                questions,
                lambda q: agent_answer(engine, q, config, planner, options),
                progress,
                concurrency,
            ),
        ),
        (
            baseline.name,
            lambda: run_all(
                f"bfcl · {baseline.name}", questions, lambda q: baseline_answer(baseline, q), progress, concurrency
            ),
        ),
    ]
    try:
        items, wall = await run_systems(runs, side_by_side)
    finally:
        await baseline.aclose()
        await engine.aclose()
    systems = [label, baseline.name]
    option_text = ", ".join(f"{k}={v}" for k, v in options.items())
    return EvalReport(
        suite="BFCL (AST)",
        model=model_label(model, engine),
        systems=systems,
        rows=score_rows(items, categories, systems),
        items=items,
        wall_s=wall,
        ids=[q.id for q in questions],
        notes=[
            f"{label}: toolkit.runtime.build.build_agent(model, functions=<the question's functions>, "
            f"planner={planner!r}{', planner_options=' + option_text if option_text else ''}, dry_run=True)"
            ".arun(<the question>), i.e. `toolkit run QUESTION --functions F --dry-run`; the calls of the "
            "dry run are the answer, none = no function fits.",
            "Scored by evals/bfcl/checker.py, a re-implementation of BFCL's AST checker "
            "(agreement with the official one: evals/bfcl_official_compare.py).",
            f"{selection.describe()} Per category: {', '.join(categories)}.",
            systems_note(side_by_side),
        ],
    )
