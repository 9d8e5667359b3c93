"""`@tool`: a Python function becomes a one-action tool; its schema comes from type hints and its
description and parameter docs from the docstring (Google style `Args:` sections)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter

from toolkit.manifest import Action, Annotations, Manifest, PythonBinding

F = TypeVar("F", bound=Callable[..., Any])


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(fn) or ""
    summary, _, rest = doc.partition("\n\n")
    params: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args:
            m = re.match(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$", stripped)
            if m:
                params[m.group(1)] = m.group(2)
            elif stripped and not line.startswith((" ", "\t")):
                in_args = False
    return " ".join(summary.split()) or fn.__name__, params


def input_schema_from_signature(fn: Callable[..., Any], param_docs: dict[str, str]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    hints = inspect.get_annotations(fn, eval_str=True)
    for name, param in inspect.signature(fn).parameters.items():
        if name == "ctx" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, Any)
        schema = TypeAdapter(annotation).json_schema() if annotation is not Any else {}
        schema.pop("title", None)
        if name in param_docs:
            schema["description"] = param_docs[name]
        if param.default is inspect.Parameter.empty:
            required.append(name)
        else:
            try:
                TypeAdapter(type(param.default)).dump_json(param.default)
                schema["default"] = param.default
            except Exception:  # noqa: BLE001 - a default that isn't JSON just isn't shown
                pass
        properties[name] = schema
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def function_manifest(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    annotations: Annotations | None = None,
    timeout_s: float = 30.0,
    examples: list[dict[str, Any]] | None = None,
) -> Manifest:
    summary, param_docs = _doc_parts(fn)
    tool_name = (name or fn.__name__).lower()
    return Manifest(
        name=tool_name,
        description=description or summary,
        binding=PythonBinding(module=fn.__module__),
        actions=[
            Action(
                name=tool_name,
                description=description or summary,
                input_schema=input_schema_from_signature(fn, param_docs),
                annotations=annotations or Annotations(),
                timeout_s=timeout_s,
                examples=examples or [],
                function=fn.__name__,
            )
        ],
    )


@overload
def tool(fn: F) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    destructive: bool = False,
    timeout_s: float = 30.0,
    examples: list[dict[str, Any]] | None = None,
) -> Callable[[F], F]: ...


def tool(
    fn: Any = None,
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    destructive: bool = False,
    timeout_s: float = 30.0,
    examples: list[dict[str, Any]] | None = None,
) -> Any:
    """Mark a function as a tool. The function stays callable as before."""

    def mark(f: F) -> F:
        f.__toolkit_manifest__ = function_manifest(  # type: ignore[attr-defined]
            f,
            name=name,
            description=description,
            annotations=Annotations(
                read_only=read_only, idempotent=idempotent, open_world=open_world, destructive=destructive
            ),
            timeout_s=timeout_s,
            examples=examples,
        )
        return f

    return mark(fn) if fn is not None else mark
