"""The plan a DAG planner asks for: typed steps, their JSON schema, validation and references.

A step's arguments may reference earlier results: `$2` (step 2's whole result), `$2.field` or
`$2.items.0` (a field / an index of it), and `${2}` / `${2.field}` inside longer strings. A value
that is exactly one reference takes the referenced value whole (a number stays a number); a
reference inside a longer string is replaced by the value's text. `$$` is a literal `$`.

Everything wrong with a plan is a PlanError with a message for the model; nothing here raises
out of the planner.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field

_PATH = r"((?:\.[A-Za-z_][\w-]*|\.\d+)*)"
REFERENCE = re.compile(r"\$\$|\$\{(\d+)" + _PATH + r"\}|\$(\d+)" + _PATH)


class PlanStep(BaseModel):
    id: int = Field(ge=1)
    action: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[int] = Field(default_factory=list)

    def dependencies(self) -> set[int]:
        """Explicit dependencies and every step its arguments reference."""
        return set(self.depends_on) | references(self.arguments)


class Plan(BaseModel):
    thought: str = ""
    steps: list[PlanStep] = Field(default_factory=list)


class PlanError(BaseModel):
    step: int | None = None  # None: the plan as a whole
    message: str

    def __str__(self) -> str:
        return f"step {self.step}: {self.message}" if self.step is not None else self.message


class ReferenceFailure(Exception):
    """A reference can't be resolved (the field is missing from the result)."""


def references(value: Any) -> set[int]:
    """Step ids referenced anywhere inside a value."""
    if isinstance(value, str):
        return {int(m.group(1) or m.group(3)) for m in REFERENCE.finditer(value) if m.group(0) != "$$"}
    if isinstance(value, dict):
        return set().union(*(references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(references(v) for v in value)) if value else set()
    return set()


def result_value(content: Any, text: str) -> Any:
    """What `$N` stands for: the structured result, or its text (parsed if it is JSON)."""
    if content is not None and not isinstance(content, str):
        return content
    raw = content if isinstance(content, str) else text
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _follow(value: Any, path: str, step_id: int) -> Any:
    for part in filter(None, path.split(".")):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            kind = type(value).__name__
            raise ReferenceFailure(f"step {step_id}'s result ({kind}) has no field {part!r}")
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def resolve(value: Any, results: dict[int, Any]) -> Any:
    """Replace references by results (`results`: step id -> result value)."""
    if isinstance(value, dict):
        return {k: resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> Any:
        step_id = int(match.group(1) or match.group(3))
        if step_id not in results:
            raise ReferenceFailure(f"${step_id} has no result")
        return _follow(results[step_id], match.group(2) or match.group(4) or "", step_id)

    whole = REFERENCE.fullmatch(value)
    if whole and whole.group(0) != "$$":
        return lookup(whole)
    return REFERENCE.sub(lambda m: "$" if m.group(0) == "$$" else _as_text(lookup(m)), value)


def check_step(step: PlanStep, tool_names: set[str], seen_ids: set[int]) -> PlanError | None:
    """What can be said of a step alone, as soon as it is parsed (before the plan is complete)."""
    if step.id in seen_ids:
        return PlanError(step=step.id, message=f"duplicate step id {step.id}; ids must be unique")
    if step.action not in tool_names:
        return PlanError(
            step=step.id, message=f"unknown tool {step.action!r}; use one of: {', '.join(sorted(tool_names))}"
        )
    if step.id in step.dependencies():
        return PlanError(step=step.id, message="a step cannot depend on its own result")
    return None


def find_cycles(deps: dict[int, set[int]]) -> list[list[int]]:
    """Dependency cycles among steps (`deps`: step -> the steps it waits for), each as a path."""
    cycles: list[list[int]] = []
    state: dict[int, int] = {}  # 1 on the stack, 2 done
    stack: list[int] = []

    def visit(node: int) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(deps.get(node, ())):
            if dep not in deps:
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(deps):
        if node not in state:
            visit(node)
    return cycles


def validate_plan(plan: Plan, tool_names: set[str]) -> list[PlanError]:
    """All errors of a complete plan: per-step errors, unknown references and cycles."""
    errors: list[PlanError] = []
    seen: set[int] = set()
    for step in plan.steps:
        error = check_step(step, tool_names, seen)
        if error:
            errors.append(error)
        seen.add(step.id)
    for step in plan.steps:
        unknown = sorted(step.dependencies() - seen)
        if unknown:
            errors.append(
                PlanError(step=step.id, message="unknown reference(s): " + ", ".join(f"${i}" for i in unknown))
            )
    for cycle in find_cycles({s.id: s.dependencies() for s in plan.steps}):
        errors.append(PlanError(message="dependency cycle: " + " -> ".join(map(str, cycle))))
    return errors


_REF_STRING = {"type": "string", "pattern": r"^\$\{?[1-9][0-9]*(\.[A-Za-z0-9_]+)*\}?$"}


def _argument_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """An action's input schema for decoding a plan: non-string values may also be a reference,
    strings get a length cap (a tiny model otherwise may never close a string)."""
    properties: dict[str, Any] = {}
    for name, prop in (input_schema.get("properties") or {}).items():
        prop = dict(prop) if isinstance(prop, dict) else {}
        if prop.get("type") == "string" and "enum" not in prop:
            prop.setdefault("maxLength", 300)
            properties[name] = prop
        else:
            properties[name] = {"anyOf": [prop, _REF_STRING]} if prop else {}
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if input_schema.get("required"):
        schema["required"] = list(input_schema["required"])
    return schema


def plan_json_schema(
    tools: list[Any], max_steps: int = 12, typed_arguments: bool = True, thought: bool = False
) -> dict[str, Any]:
    """The JSON schema a plan is decoded under. Actions are the offered tools' names (an enum, or
    with `typed_arguments` one branch per tool whose arguments follow that tool's schema).

    Every count is bounded (ids, dependencies, steps) so that a tiny model can't loop forever
    inside the grammar. The free-text `thought` is off by default: tiny models ramble in it
    until they run out of tokens, and the plan never gets written."""
    names = [t.name for t in tools]
    step_id = {"type": "integer", "minimum": 1, "maximum": 99}
    common = {
        "id": step_id,
        "depends_on": {"type": "array", "items": step_id, "maxItems": min(max_steps, 16)},
    }
    required = ["id", "action", "arguments", "depends_on"]
    if typed_arguments and tools:
        item: dict[str, Any] = {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "id": common["id"],
                        "action": {"const": t.name},
                        "arguments": _argument_schema(t.parameters),
                        "depends_on": common["depends_on"],
                    },
                    "required": required,
                    "additionalProperties": False,
                }
                for t in tools
            ]
        }
    else:
        item = {
            "type": "object",
            "properties": {
                "id": common["id"],
                "action": {"type": "string", "enum": names},
                "arguments": {"type": "object"},
                "depends_on": common["depends_on"],
            },
            "required": required,
            "additionalProperties": False,
        }
    steps: dict[str, Any] = {"type": "array", "items": item, "maxItems": min(max_steps, 16) if names else 0}
    properties: dict[str, Any] = {"thought": {"type": "string", "maxLength": 300}} if thought else {}
    properties["steps"] = steps
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
