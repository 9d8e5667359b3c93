"""`toolkit eval nestful`: planned call sequences against NESTFUL's gold nested sequences.

NESTFUL (IBM) gives a request and the gold sequence of calls, where later arguments refer to
earlier outputs as `$varK.field$` (K: the K-th call). The engine is the agent as
`toolkit run REQUEST --functions F --planner P --dry-run` builds it (`build_agent`), F being the
functions offered, a column per planner:

- dag (the natural product path for a sequence): its dry run records the planner's whole first
  plan, each step a call whose references to earlier results stay as written (`$1.field`); they
  are rewritten to NESTFUL's `$var<position>.field$`, the calls taken in plan order;
- react: its dry run records its first turn's calls, one call with the llamacpp backend: the
  start of the sequence only, since later calls need results a dry run does not have.

The baseline answers in one request with a prompt describing NESTFUL's reference format and the
calls as tool calls (`nestful_request`, evals/baselines.py), as before.

Tools offered per question: the functions of its gold sequence plus 3 others from the same spec
file (chosen by a seeded shuffle), because this copy of the data has no per-question tool list.
Metrics (per question, averaged): F1 on function names (multiset), F1 on arguments (multiset of
(function, parameter, value) with references rewritten to the referenced function's name so that
numbering doesn't matter), full-sequence accuracy (same calls, same order, same arguments).
The final `var_result` step of the gold (which only names the outputs) is not scored.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from rich.progress import Progress

from evals.baselines import engine_and_baseline
from evals.runner import EvalReport, ReportRow, model_label, run_all, run_systems, suite_dir, systems_note
from evals.sampling import Selection
from toolkit.config import Config, load_config
from toolkit.models import Backend
from toolkit.types import LLMRequest, LLMResponse, Message, Sampling, TaskResult, ToolSpec

ENGINE_LABEL = "toolkit agent"
FILES = (
    ("executable", "executable-data.json", "executable-spec.json"),
    ("glaive", "non-executable-glaive-data.json", "non-executable-glaive-spec.json"),
    ("sgd", "non-executable-sgd-data.json", "non-executable-sgd-spec.json"),
)
DISTRACTORS = 3
_REF = re.compile(r"\$(var\d+)((?:\.[^$]*)?)\$")
SYSTEM_PROMPT = (
    "Answer the request with the sequence of function calls that fulfils it, in order. The output of "
    "the i-th call is called var<i> (the first call is var1). To use a field of an earlier output as an "
    'argument, write the string "$var<i>.<field>$" (for example "$var1.id$"); the whole output is "$var<i>$".'
)


def _parameters(spec: dict[str, Any], references: bool = True) -> tuple[dict[str, Any], list[str]]:
    """NESTFUL's three spec shapes -> JSON Schema properties. `references`: a typed argument may
    also be a string (the baseline writes "$var1.id$" there; the dag planner allows its own
    references by itself)."""
    raw: dict[str, Any] = {}
    for key in ("parameters", "path_parameters", "query_parameters", "arguments"):
        block = spec.get(key)
        if isinstance(block, dict):
            raw.update(block.get("properties", block) if block.get("type") == "object" else block)
    properties, required = {}, []
    for name, info in raw.items():
        info = info if isinstance(info, dict) else {}
        kind = info.get("type", "string")
        kind = {
            "str": "string",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
            "list": "array",
            "dict": "object",
        }.get(kind, kind)
        schema: dict[str, Any] = {"description": str(info.get("description", ""))}
        if info.get("allowed_values"):
            schema["description"] += f" One of: {', '.join(map(str, info['allowed_values']))}."
        if kind == "string" or kind not in ("integer", "number", "boolean", "array", "object"):
            schema["type"] = "string"
        elif references:  # a typed argument may still be a "$varK.field$" reference
            schema["anyOf"] = [{"type": kind}, {"type": "string"}]
        else:
            schema["type"] = kind
        properties[name] = schema
        if info.get("required") is True:
            required.append(name)
    if isinstance(spec.get("parameters"), dict) and isinstance(spec["parameters"].get("required"), list):
        required = [r for r in spec["parameters"]["required"] if r in properties]
    return properties, required


def to_tool_spec(spec: dict[str, Any]) -> ToolSpec:
    """The baseline's tool: typed arguments may also be reference strings."""
    properties, required = _parameters(spec)
    return ToolSpec(
        name=spec["name"],
        description=spec.get("description", ""),
        parameters={"type": "object", "properties": properties, "required": required},
    )


def to_function_definition(spec: dict[str, Any]) -> dict[str, Any]:
    """The agent's function (`toolkit run --functions`): the arguments with their own types."""
    properties, required = _parameters(spec, references=False)
    return {
        "name": spec["name"],
        "description": spec.get("description", ""),
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


def load_nestful(
    data_dir: str | None, limit: int | None = None, selection: Selection | None = None
) -> list[dict[str, Any]]:
    """Questions from the three files, interleaved (so that the first N mix all three), then the
    selection (`limit` alone: the first N). Ids: `<file>_<index in it>`."""
    folder = suite_dir(data_dir, "nestful", "executable-data.json")
    per_file = []
    for source, data_name, spec_name in FILES:
        specs = {s["name"]: s for s in json.loads((folder / spec_name).read_text(encoding="utf-8"))}
        rows = json.loads((folder / data_name).read_text(encoding="utf-8"))
        per_file.append([(source, index, row, specs) for index, row in enumerate(rows)])
    items = []
    for round_ in range(max(len(rows) for rows in per_file)):
        for rows in per_file:
            if round_ < len(rows):
                items.append(_item(*rows[round_]))
    return (selection or Selection(limit=limit)).apply(items, lambda item: item["id"])


def _item(source: str, index: int, row: dict[str, Any], specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    gold = [c for c in row["output"] if c["name"] != "var_result"]
    wanted = list(dict.fromkeys(c["name"] for c in gold if c["name"] in specs))
    others = sorted(n for n in specs if n not in wanted)
    random.Random(f"{source}-{index}").shuffle(others)
    names = wanted + others[:DISTRACTORS]
    random.Random(f"order-{source}-{index}").shuffle(names)
    missing = sorted({c["name"] for c in gold if c["name"] not in specs})  # a few gold calls name unlisted functions
    return {
        "id": f"{source}_{index}",
        "input": row["input"],
        "gold": gold,
        "missing": missing,
        "tools": [to_tool_spec(specs[n]) for n in names],
        "functions": [to_function_definition(specs[n]) for n in names],
    }


def _normalise_value(value: Any, labels: dict[str, str]) -> Any:
    if isinstance(value, str):
        text = _REF.sub(lambda m: f"${labels.get(m[1], m[1])}{m[2]}$", value.strip())
        try:
            return float(text) if not text.startswith("$") else text.lower()
        except ValueError:
            return text.lower()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return float(value)
    return json.dumps(value, sort_keys=True).lower()


def normalise_sequence(calls: list[dict[str, Any]]) -> list[tuple[str, tuple[tuple[str, Any], ...]]]:
    """(name, sorted normalised arguments) per call; references name the function they point at."""
    labels = {c.get("label") or f"var{i + 1}": c["name"] for i, c in enumerate(calls)}
    return [
        (c["name"], tuple(sorted((k, _normalise_value(v, labels)) for k, v in (c.get("arguments") or {}).items())))
        for c in calls
    ]


def _f1(predicted: Counter, gold: Counter) -> float:
    if not predicted and not gold:
        return 1.0
    overlap = sum((predicted & gold).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(predicted.values()), overlap / sum(gold.values())
    return 2 * precision * recall / (precision + recall)


def score_sequence(predicted: list[dict[str, Any]], gold: list[dict[str, Any]]) -> dict[str, float]:
    p, g = normalise_sequence(predicted), normalise_sequence(gold)
    name_f1 = _f1(Counter(n for n, _ in p), Counter(n for n, _ in g))
    arg_f1 = _f1(
        Counter((n, k, repr(v)) for n, args in p for k, v in args),
        Counter((n, k, repr(v)) for n, args in g for k, v in args),
    )
    return {"f1_names": name_f1, "f1_arguments": arg_f1, "full_sequence": float(p == g)}


def nestful_request(item: dict[str, Any]) -> LLMRequest:
    return LLMRequest(
        messages=[Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=item["input"])],
        tools=item["tools"],
        tool_choice="required",
        parallel_tool_calls=True,
        sampling=Sampling(temperature=0.0, max_tokens=768, seed=0),
    )


def as_sequence(result: TaskResult) -> list[dict[str, Any]]:
    """A dry run's recorded calls as a NESTFUL sequence, in the order the plan wrote its steps (the
    trace's plan event; calls are recorded as steps become ready, 4 before 3 when 3 waits for 1):
    a dag step's references (`$2`, `$2.field`, `${2.field}` in a longer string) become
    `$var<k>.field$`, k the position of step 2's call. A call's step id is its call event's `node`."""
    from toolkit.planner.dag.plan import REFERENCE

    calls = [(e.node, e.call) for e in result.trace if e.kind == "call" and e.call is not None]
    plan = next((e.plan for e in result.trace if e.kind == "plan" and e.plan), [])
    written = {str(step.get("id")): k for k, step in enumerate(plan)}
    calls.sort(key=lambda node_call: written.get(node_call[0] or "", len(written)))  # stable: react's stay
    position = {int(node): k for k, (node, _) in enumerate(calls, start=1) if node and node.isdigit()}

    def rewrite(value: Any) -> Any:
        if isinstance(value, str):

            def one(match: re.Match[str]) -> str:
                if match.group(0) == "$$":
                    return "$"
                step_id, path = int(match.group(1) or match.group(3)), match.group(2) or match.group(4) or ""
                return f"$var{position.get(step_id, step_id)}{path}$"

            return REFERENCE.sub(one, value)
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    return [{"name": call.name, "arguments": rewrite(call.arguments)} for _, call in calls]


def agent_label(planner: str) -> str:
    return f"{ENGINE_LABEL} ({planner})"


async def agent_answer(backend: Backend, item: dict[str, Any], config: Config, planner: str) -> dict[str, Any]:
    """One request through the agent in a dry run, scored. Never raises."""
    from toolkit.runtime.build import build_agent

    label = agent_label(planner)
    try:
        agent = build_agent(backend, functions=item["functions"], planner=planner, dry_run=True, config=config)
    except ValueError as exc:  # a function NESTFUL defines that can't be declared: scored, reported
        return _scored(label, item, [], f"setup: {exc}")
    try:
        result = await agent.arun(item["input"], task_id=item["id"])
    finally:
        await agent.executor.aclose()  # not agent.aclose(): the backend is shared
    calls = as_sequence(result)
    error = result.error if not calls and result.status != "ok" else None
    return {
        **_scored(label, item, calls, error),
        "model_calls": sum(1 for e in result.trace if e.kind == "model_call"),
        "seconds": round(result.wall_s, 3),
    }


async def baseline_answer(system: str, backend: Backend, item: dict[str, Any]) -> dict[str, Any]:
    """The baseline: the whole sequence as tool calls in one request. Never raises."""
    try:
        response = await backend.generate(nestful_request(item))
    except Exception as exc:  # noqa: BLE001 - scored as an empty, unparseable answer
        response = LLMResponse(finish_reason="error", parse_error=f"{type(exc).__name__}: {exc}")
    calls = [] if response.parse_error else [{"name": c.name, "arguments": c.arguments} for c in response.tool_calls]
    return _scored(system, item, calls, response.parse_error)


def _scored(system: str, item: dict[str, Any], calls: list[dict[str, Any]], error: str | None) -> dict[str, Any]:
    return {
        "id": item["id"],
        "system": system,
        "calls": calls,
        "unparseable": error is not None,
        "parse_error": error,
        **score_sequence(calls, item["gold"]),
    }


async def run_nestful(
    selection: Selection | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    planners: tuple[str, ...] | list[str] = ("dag", "react"),
    progress: Progress | None = None,
    engine: Backend | None = None,
    baseline: Backend | None = None,
    concurrency: int = 4,
    side_by_side: bool = True,
) -> EvalReport:
    """`planners`: the agent's planners, a column each (dag: its first plan is the sequence;
    react: its first turn's calls). `side_by_side`: every system answers at the same time (the
    agents through the engine's batching), the engine's and the baseline's llama.cpp contexts on
    half the cores each; False: one after the other, each on all cores."""
    from toolkit.planner import make_planner

    if not planners:
        raise ValueError("no planner given")
    for planner in planners:
        make_planner(planner)  # an unknown planner: a clear error before any model loads
    selection = selection or Selection(limit=20)
    items = load_nestful(data_dir, selection=selection)
    config = load_config()
    engine, baseline = engine_and_baseline(model, side_by_side, engine, baseline)
    systems = [*(agent_label(p) for p in planners), baseline.name]

    def agent_run(planner: str) -> Callable[[], Awaitable[tuple[list[dict[str, Any]], float]]]:
        return lambda: run_all(
            f"nestful · {agent_label(planner)}",
            items,
            lambda i: agent_answer(engine, i, config, planner),
            progress,
            concurrency,
        )

    runs = [(agent_label(planner), agent_run(planner)) for planner in planners]
    runs.append(
        (
            baseline.name,
            lambda: run_all(
                f"nestful · {baseline.name}",
                items,
                lambda i: baseline_answer(baseline.name, baseline, i),
                progress,
                concurrency,
            ),
        )
    )
    try:
        results, wall = await run_systems(runs, side_by_side)
    finally:
        await baseline.aclose()
        await engine.aclose()
    rows = []
    for metric, title in (
        ("f1_names", "F1 function names"),
        ("f1_arguments", "F1 arguments"),
        ("full_sequence", "full-sequence accuracy"),
        ("unparseable", "unparseable outputs"),
    ):
        values = {}
        for system in systems:
            mine = [r[metric] for r in results if r["system"] == system]
            values[system] = sum(float(v) for v in mine) / len(mine) if mine else None
        rows.append(ReportRow(name=title, n=len(items), values=values, unit="%"))
    notes = [
        f"{ENGINE_LABEL} (P): toolkit.runtime.build.build_agent(model, functions=<the tools offered>, planner=P, "
        "dry_run=True).arun(<the request>), i.e. `toolkit run REQUEST --functions F --planner P --dry-run`; its "
        "recorded calls in plan order, references rewritten to $var<k>$ (react: its first turn's calls).",
        f"{selection.describe()} Of NESTFUL's executable, glaive and sgd files, interleaved; "
        f"tools offered: the gold functions plus {DISTRACTORS} others from the same spec.",
        "Baseline: the whole sequence as tool calls in one request (nestful_request: the i-th call is var<i>).",
        systems_note(side_by_side),
    ]
    missing = [i["id"] for i in items if i["missing"]]
    if missing:
        notes.append(
            f"{len(missing)} question(s) need a function their spec file lacks (no system can match them fully): {', '.join(missing)}."
        )
    return EvalReport(
        suite="NESTFUL",
        model=model_label(model, engine),
        systems=systems,
        rows=rows,
        items=results,
        wall_s=wall,
        ids=[i["id"] for i in items],
        notes=notes,
    )
