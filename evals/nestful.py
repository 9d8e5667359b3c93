"""`toolkit eval nestful`: planned call sequences against NESTFUL's gold nested sequences.

NESTFUL (IBM) gives a request and the gold sequence of calls, where later arguments refer to
earlier outputs as `$varK.field$` (K: the K-th call). The engine is asked for the whole sequence
in one constrained request (`--planner sequential`: calls in order, the i-th call is `var<i>`), or
through the dag planner (`--planner dag`) when it is installed: its first plan is the sequence.
The baseline answers the same request (evals/baselines.py).

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
from typing import Any

from rich.progress import Progress

from evals.baselines import engine_and_baseline
from evals.runner import EvalReport, ReportRow, model_label, run_all, run_systems, suite_dir, systems_note
from toolkit.models import Backend
from toolkit.types import Constraint, LLMRequest, LLMResponse, Message, Sampling, ToolSpec

DAG_LABEL = "engine: dag plan"
SEQUENTIAL_LABEL = "engine: sequential calls"
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


def _parameters(spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """NESTFUL's three spec shapes -> JSON Schema properties; any argument may be a reference."""
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
        else:  # a typed argument may still be a "$varK.field$" reference
            schema["anyOf"] = [{"type": kind}, {"type": "string"}]
        properties[name] = schema
        if info.get("required") is True:
            required.append(name)
    if isinstance(spec.get("parameters"), dict) and isinstance(spec["parameters"].get("required"), list):
        required = [r for r in spec["parameters"]["required"] if r in properties]
    return properties, required


def to_tool_spec(spec: dict[str, Any]) -> ToolSpec:
    properties, required = _parameters(spec)
    return ToolSpec(
        name=spec["name"],
        description=spec.get("description", ""),
        parameters={"type": "object", "properties": properties, "required": required},
    )


def load_nestful(data_dir: str | None, limit: int | None) -> list[dict[str, Any]]:
    """Questions from the three files, interleaved (so a small --limit samples all of them)."""
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
    return items[: limit or None]


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


def dag_plan_request(item: dict[str, Any]) -> LLMRequest:
    """The request the dag planner makes for its first plan (same prompt, same plan schema)."""
    from toolkit.planner.dag import PLAN_INSTRUCTIONS
    from toolkit.planner.dag.plan import plan_json_schema
    from toolkit.planner.prompts import system_message

    return LLMRequest(
        messages=[system_message(item["tools"], PLAN_INSTRUCTIONS), Message(role="user", content=item["input"])],
        tool_choice="none",
        constraint=Constraint(kind="json_schema", json_schema=plan_json_schema(item["tools"])),
        sampling=Sampling(temperature=0.0, max_tokens=1024, seed=0),
    )


def plan_to_calls(text: str) -> list[dict[str, Any]]:
    """A dag plan's steps as a NESTFUL sequence: `$N.field` references become `$var<i>.field$`."""
    from toolkit.planner.dag.plan import REFERENCE, Plan

    plan = Plan.model_validate_json(text)
    position = {step.id: index + 1 for index, step in enumerate(plan.steps)}

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

    return [{"name": step.action, "arguments": rewrite(step.arguments)} for step in plan.steps]


async def answer(system: str, backend: Backend, item: dict[str, Any], mode: str = "sequential") -> dict[str, Any]:
    request = dag_plan_request(item) if mode == "dag" else nestful_request(item)
    try:
        response = await backend.generate(request)
    except Exception as exc:  # noqa: BLE001 - scored as an empty, unparseable answer
        response = LLMResponse(finish_reason="error", parse_error=f"{type(exc).__name__}: {exc}")
    calls: list[dict[str, Any]] = []
    if mode == "dag" and not response.parse_error and not response.text.strip() and response.tool_calls:
        mode = "sequential"  # a backend that answers with native calls (as the dag planner accepts too)
    if mode == "dag" and not response.parse_error:
        try:
            calls = plan_to_calls(response.text)
        except ValueError as exc:
            response.parse_error = f"the plan could not be read: {exc}"[:300]
    elif not response.parse_error:
        calls = [{"name": c.name, "arguments": c.arguments} for c in response.tool_calls]
    return {
        "id": item["id"],
        "system": system,
        "calls": calls,
        "unparseable": response.parse_error is not None,
        "parse_error": response.parse_error,
        **score_sequence(calls, item["gold"]),
    }


async def run_nestful(
    limit: int | None = 20,
    model: str | None = None,
    data_dir: str | None = None,
    planner: str = "both",
    progress: Progress | None = None,
    engine: Backend | None = None,
    baseline: Backend | None = None,
    concurrency: int = 4,
    side_by_side: bool = True,
) -> EvalReport:
    """`planner`: dag (the dag planner's first plan), sequential (calls in one request) or both.
    `side_by_side`: every system answers at the same time (the engine's two through its batching),
    the engine's and the baseline's llama.cpp contexts on half the cores each; False: one after
    the other, each on all cores."""
    if planner not in ("dag", "sequential", "both"):
        raise ValueError(f"--planner must be dag, sequential or both, not {planner!r}")
    items = load_nestful(data_dir, limit)
    engine, baseline = engine_and_baseline(model, side_by_side, engine, baseline)
    systems_run = [(DAG_LABEL, engine, "dag")] if planner in ("dag", "both") else []
    systems_run += [(SEQUENTIAL_LABEL, engine, "sequential")] if planner in ("sequential", "both") else []
    systems_run.append((baseline.name, baseline, "sequential"))
    systems = [label for label, _, _ in systems_run]
    runs = [
        (
            label,
            lambda b=backend, s=label, m=mode: run_all(
                f"nestful · {s}", items, lambda i: answer(s, b, i, m), progress, concurrency
            ),
        )
        for label, backend, mode in systems_run
    ]
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
        f"{len(items)} questions interleaved from NESTFUL's executable, glaive and sgd files; "
        f"tools offered: the gold functions plus {DISTRACTORS} others from the same spec.",
        "dag plan: the dag planner's plan request (its prompt and plan schema), steps in plan order; "
        "sequential calls: the whole sequence as tool calls in one constrained request (the i-th is var<i>).",
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
        notes=notes,
    )
