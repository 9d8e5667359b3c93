"""Loading BFCL questions and possible answers, and turning BFCL's functions into ToolSpecs.

Where the data is: `--data-dir D` (D itself or D/bfcl), else `$TOOLKIT_EVAL_DATA/bfcl`, else the
`data/` folder of the installed `bfcl-eval` package. Files hold one JSON object per line despite
their `.json` ending: `BFCL_v<N>_<category>.json` and `possible_answer/BFCL_v<N>_<category>.json`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from toolkit.types import Message, ToolSpec

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
# BFCL's live categories (user-contributed questions) the AST checker scores; live_relevance is
# right when the model calls at all, whatever the call
LIVE_CATEGORIES = (
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
SUPPORTED = CATEGORIES + LIVE_CATEGORIES


class DataNotFound(Exception):
    """No BFCL data where we looked; the message says where and how to point at it."""


class Question(BaseModel):
    id: str
    category: str
    messages: list[dict[str, Any]]  # the first (only) turn of the question
    functions: list[dict[str, Any]]
    answers: list[dict[str, Any]] | None = None  # None for irrelevance


def _has_bfcl_files(path: Path) -> bool:
    return path.is_dir() and any(path.glob("BFCL_v*_*.json"))


def find_data_dir(data_dir: str | Path | None = None) -> Path:
    """The folder holding BFCL_v*_<category>.json, following the documented order."""
    tried: list[str] = []
    roots = [Path(data_dir)] if data_dir else []
    if not data_dir and os.environ.get("TOOLKIT_EVAL_DATA"):
        roots.append(Path(os.environ["TOOLKIT_EVAL_DATA"]))
    for root in roots:
        for candidate in (root, root / "bfcl"):
            if _has_bfcl_files(candidate):
                return candidate
            tried.append(str(candidate))
    if not data_dir:
        spec = importlib.util.find_spec("bfcl_eval")
        if spec is not None and spec.submodule_search_locations:
            candidate = Path(next(iter(spec.submodule_search_locations))) / "data"
            if _has_bfcl_files(candidate):
                return candidate
            tried.append(str(candidate))
        else:
            tried.append("the bfcl-eval package (not installed)")
    raise DataNotFound(
        "BFCL data not found (looked in: " + ", ".join(tried) + "); pass --data-dir, set TOOLKIT_EVAL_DATA "
        "to the folder holding bfcl/, or install the bfcl-eval package"
    )


def _category_file(folder: Path, category: str) -> Path:
    pattern = re.compile(rf"BFCL_v(\d+)_{re.escape(category)}\.json")  # not parallel_multiple for multiple
    versions = {p: int(m[1]) for p in folder.glob("BFCL_v*.json") if (m := pattern.fullmatch(p.name))}
    matches = sorted(versions, key=versions.__getitem__)
    if not matches:
        raise DataNotFound(f"no BFCL file for category {category!r} in {folder}")
    return matches[-1]  # the newest version when several are present


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def has_no_answers(category: str) -> bool:
    """(Ir)relevance questions are scored on whether there is a call, not on possible answers."""
    return "relevance" in category


def load_category(category: str, data_dir: str | Path | None = None, limit: int | None = None) -> list[Question]:
    """The first `limit` questions of a category with their possible answers."""
    folder = find_data_dir(data_dir)
    entries = _read_jsonl(_category_file(folder, category))[: limit or None]
    answers: dict[str, list[dict[str, Any]]] = {}
    if not has_no_answers(category):
        answer_file = _category_file(folder / "possible_answer", category)
        answers = {row["id"]: row["ground_truth"] for row in _read_jsonl(answer_file)}
    questions = []
    for entry in entries:
        if not has_no_answers(category) and entry["id"] not in answers:
            raise DataNotFound(f"no possible answer for {entry['id']} in {folder / 'possible_answer'}")
        questions.append(
            Question(
                id=entry["id"],
                category=category,
                messages=entry["question"][0],
                functions=entry["function"],
                answers=answers.get(entry["id"]),
            )
        )
    return questions


# BFCL's own type names -> JSON Schema types; "any" accepts anything
_JSON_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}
_KEPT_KEYS = ("description", "enum", "minItems", "maxItems", "maximum", "minimum", "format")


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """BFCL's parameter schema (types dict/float/tuple/any) as standard JSON Schema."""
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, str):
        mapped = _JSON_TYPES.get(kind, kind)
        if mapped is not None:
            out["type"] = mapped
    for key in _KEPT_KEYS:
        if key in schema:
            out[key] = schema[key]
    if "default" in schema:
        # a default is a hint for the model, not a constraint: say it in the description
        out["description"] = (out.get("description", "") + f" Default: {json.dumps(schema['default'])}.").strip()
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: to_json_schema(sub) for name, sub in schema["properties"].items()}
        out["required"] = list(schema.get("required", []))
    if isinstance(schema.get("items"), dict):
        out["items"] = to_json_schema(schema["items"])
    return out


def to_function_definitions(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL's functions as OpenAI-format definitions (JSON Schema parameters), the shape
    `toolkit run --functions` reads."""
    definitions = []
    for function in functions:
        parameters = to_json_schema(function.get("parameters") or {"type": "dict", "properties": {}})
        parameters["type"] = "object"
        parameters.setdefault("properties", {})
        definitions.append(
            {"name": function["name"], "description": function.get("description", ""), "parameters": parameters}
        )
    return definitions


def to_tool_specs(functions: list[dict[str, Any]]) -> list[ToolSpec]:
    """BFCL's functions as the ToolSpecs a backend is given (the baseline's request)."""
    return [ToolSpec(**definition) for definition in to_function_definitions(functions)]


def to_messages(question: Question) -> list[Message]:
    return [Message(role=m["role"], content=m.get("content") or "") for m in question.messages]


def task_text(question: Question) -> str:
    """The question as one task for the agent: the user's words; when BFCL gives a system message
    or earlier turns too (4% of the live questions), every message on its own line, role first."""
    if len(question.messages) == 1:
        return question.messages[0].get("content") or ""
    return "\n\n".join(f"{m['role']}: {m.get('content') or ''}" for m in question.messages)
