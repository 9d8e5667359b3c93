"""Function definitions (OpenAI's function-calling format) declared as tools without an
implementation: an agent can be offered them and a dry run shows what it would call.

    Python: declare_functions(registry, [{"name": "get_weather", "description": "...",
                                          "parameters": {JSON Schema}}, ...])
    CLI:              toolkit run "TASK" --functions defs.json --dry-run

A definition is `{"name", "description", "parameters"}` or OpenAI's tools entry
`{"type": "function", "function": {...}}`; a file holds one definition or a list of them (JSON or
YAML). The model sees each function under its own name (`ChaDri.change_drink` too, which a tool
name can't hold: it is registered as a tool with a safe name and offered under an alias). Calling
one for real is an error that says so; only a dry run makes sense of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from toolkit.bindings import ToolContext
from toolkit.manifest import Action, Manifest, ManifestError, PythonBinding, read_document
from toolkit.registry import RegisteredTool, ToolRegistry, qualified_name

_UNSAFE = re.compile(r"[^a-z0-9_]+")


class FunctionDefinitionError(ValueError):
    """A function definition that can't be declared; the message names it and says why."""


class DeclaredOnly:
    """The binding of a declared function: there is nothing to run."""

    def __init__(self, name: str):
        self.name = name

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        raise RuntimeError(f"{self.name} is declared without an implementation; a dry run shows its calls")


def _definition(raw: Any, index: int) -> dict[str, Any]:
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        raw = raw["function"]
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise FunctionDefinitionError(f"function #{index + 1}: expected an object with a name")
    return raw


def _tool_name(public: str, taken: set[str]) -> str:
    base = _UNSAFE.sub("_", public.lower()).strip("_") or "function"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def declare_functions(
    registry: ToolRegistry, functions: list[Any], source: str = "declared functions"
) -> list[RegisteredTool]:
    """Declare each definition as a one-action tool offered under the function's own name.
    Raises FunctionDefinitionError (nothing declared) when one can't be."""
    definitions = [_definition(raw, i) for i, raw in enumerate(functions)]
    names = [d["name"] for d in definitions]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FunctionDefinitionError(f"{source}: function(s) defined twice: {', '.join(repeated)}")
    manifests = []
    taken = set(registry.tools)
    for definition in definitions:
        public = definition["name"]
        tool = _tool_name(public, taken)
        taken.add(tool)
        parameters = definition.get("parameters") or {"type": "object", "properties": {}}
        try:
            action = Action(
                name=tool,
                description=str(definition.get("description") or public),
                input_schema=parameters,
            )
        except ValidationError as exc:
            problem = "; ".join(e["msg"] for e in exc.errors())
            raise FunctionDefinitionError(f"{source}: function {public!r}: {problem}") from None
        manifest = Manifest(
            name=tool, description=action.description, binding=PythonBinding(module=__name__), actions=[action]
        )
        manifests.append((public, manifest))
    existing = {s.name for s in registry.specs()} | set(registry.aliases)
    clash = sorted(public for public, _ in manifests if public in existing)
    if clash:
        raise FunctionDefinitionError(f"{source}: already registered under the same name: {', '.join(clash)}")
    declared = []
    for public, manifest in manifests:
        registered = registry.add_manifest(manifest, source=source, bindings={manifest.name: DeclaredOnly(public)})
        if registered is None:  # add_manifest records why in registry.errors
            raise FunctionDefinitionError(f"{source}: function {public!r} could not be registered")
        qualified = qualified_name(manifest.name, manifest.name)
        if public != qualified:
            registry.add_alias(public, qualified)
        declared.append(registered)
    return declared


def read_functions(path: str | Path) -> list[Any]:
    """The definitions in a JSON or YAML file: one definition, a list, or {"functions"|"tools": [...]}."""
    if not Path(path).is_file():
        raise FunctionDefinitionError(f"{path}: no such file")
    try:
        data = read_document(Path(path))
    except ManifestError as exc:  # unreadable, or not JSON / YAML
        raise FunctionDefinitionError("; ".join(message for _, message in exc.errors) + f" ({path})") from None
    if isinstance(data, dict):
        for key in ("functions", "tools"):
            if isinstance(data.get(key), list):
                return data[key]
        return [data]
    if isinstance(data, list):
        return data
    raise FunctionDefinitionError(f"{path}: expected a function definition or a list of them")
