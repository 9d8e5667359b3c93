"""The tool manifest: pydantic models, loading from YAML/JSON, and validation errors that name
the file and the field (a JSON pointer).

The shipped JSON Schema (`toolkit/schema/manifest.schema.json`) is generated from these models
(`python -m toolkit.manifest --write-schema`); a test keeps the two in step.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from toolkit import safe_yaml
from toolkit.schema_validation import schema_problems

NAME_PATTERN = r"^[a-z0-9_]+$"
ACTION_PATTERN = r"^[A-Za-z0-9_]+$"
MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"  # absolute and dotted: no "", ".x", "a..b"
FUNCTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SCHEMA_PATH = Path(__file__).parent / "schema" / "manifest.schema.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Annotations(_Strict):
    """Hints about an action's effects (MCP's tool annotations, snake_cased)."""

    read_only: bool = Field(False, description="The action changes nothing outside the engine.")
    idempotent: bool = Field(False, description="Calling twice with the same arguments is safe; retried on failure.")
    open_world: bool = Field(False, description="The action reaches outside (network, the web).")
    destructive: bool = Field(False, description="The action may delete or overwrite something.")


class Example(_Strict):
    task: str = Field(description="A task this action serves.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="The arguments for that task.")


class HttpRoute(_Strict):
    """How an action of an `http` binding maps to a request."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field("GET", description="HTTP method.")
    path: str = Field(
        description="Path appended to the binding's base_url; `{param}` placeholders are filled from arguments."
    )


class Action(_Strict):
    name: str = Field(pattern=ACTION_PATTERN, description="Unique within the tool; the model calls `tool.action`.")
    description: str = Field(min_length=1, description="What the action does, for the model.")
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema (draft 2020-12) of the arguments object.",
    )
    output_schema: dict[str, Any] | None = Field(None, description="JSON Schema of the result, if known.")
    annotations: Annotations = Field(default_factory=Annotations, description="Effects of the action.")
    timeout_s: float = Field(30.0, gt=0, description="The call is cut off after this many seconds.")
    examples: list[Example] = Field(default_factory=list, description="Tasks with the arguments that serve them.")
    function: str | None = Field(
        None, description="python binding: the function's name in the module (default: the action's name)."
    )
    route: HttpRoute | None = Field(None, description="http binding: the request this action makes.")
    operation_id: str | None = Field(None, description="openapi binding: the operation (default: the action's name).")

    @field_validator("input_schema", "output_schema")
    @classmethod
    def _is_json_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return schema
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            pointer = "/" + "/".join(str(p) for p in exc.absolute_path) if exc.absolute_path else ""
            raise ValueError(f"not a valid JSON Schema at {pointer or '/'}: {exc.message}") from None
        problems = schema_problems(schema)
        if problems:
            pointer, message = problems[0]
            raise ValueError(f"refused at {pointer or '/'}: {message}")
        return schema


class PythonBinding(_Strict):
    type: Literal["python"] = "python"
    module: str = Field(
        description="Importable module holding one function per action: an absolute dotted name, not the standard library's.",
    )

    @field_validator("module")
    @classmethod
    def _module_allowed(cls, module: str) -> str:
        problem = module_name_problem(module, allow_stdlib=False)
        if problem:
            raise ValueError(problem)
        return module


class HttpBinding(_Strict):
    type: Literal["http"] = "http"
    base_url: str = Field(description="Base URL of the service.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers; `${VAR}` is replaced by the environment variable VAR."
    )


class OpenAPIBinding(_Strict):
    type: Literal["openapi"] = "openapi"
    spec: str = Field(
        description="OpenAPI spec: a path (relative to the manifest) or an http(s) URL. Its operations become actions."
    )
    base_url: str | None = Field(None, description="Overrides the spec's first server URL.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers; `${VAR}` is replaced by the environment variable VAR."
    )


class MCPBinding(_Strict):
    type: Literal["mcp"] = "mcp"
    command: list[str] | None = Field(None, description="stdio transport: the server's command line.")
    url: str | None = Field(None, description="streamable HTTP transport: the server's URL.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment for a stdio server; `${VAR}` expands."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> MCPBinding:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (stdio) or `url` (streamable HTTP)")
        return self


Binding = Annotated[PythonBinding | HttpBinding | OpenAPIBinding | MCPBinding, Field(discriminator="type")]


class Auth(_Strict):
    env: list[str] = Field(
        default_factory=list,
        description="Environment variables the tool needs; if one is missing the tool is unavailable.",
    )


class Requires(_Strict):
    python: list[str] = Field(
        default_factory=list, description="Modules that must import, else the tool is unavailable."
    )
    binaries: list[str] = Field(
        default_factory=list, description="Executables that must be found (absolute path or on PATH)."
    )
    install_hint: str | None = Field(None, description="What to install when something is missing.")

    @field_validator("python")
    @classmethod
    def _modules_allowed(cls, modules: list[str]) -> list[str]:
        for module in modules:
            problem = module_name_problem(module, allow_stdlib=True)
            if problem:
                raise ValueError(problem)
        return modules


class Manifest(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Unique tool name.")
    version: str = Field("0.1.0", description="The tool's version.")
    description: str = Field(min_length=1, description="What the tool is for.")
    binding: Binding = Field(description="How the actions run: python, http, openapi or mcp.")
    auth: Auth = Field(default_factory=Auth, description="Credentials the tool needs.")
    requires: Requires = Field(default_factory=Requires, description="Packages and programs the tool needs.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Default settings; the user's config overrides them per tool."
    )
    actions: list[Action] = Field(
        default_factory=list, description="The actions; openapi and mcp bindings may discover theirs."
    )

    @model_validator(mode="after")
    def _actions_present_and_unique(self) -> Manifest:
        if not self.actions and self.binding.type in ("python", "http"):
            raise ValueError(f"a {self.binding.type} binding needs at least one action")
        seen: set[str] = set()
        for action in self.actions:
            if action.name in seen:
                raise ValueError(f"two actions named {action.name!r}")
            seen.add(action.name)
            function = action.function or action.name
            if self.binding.type == "python" and (
                not re.match(FUNCTION_PATTERN, function) or function.startswith("__") or keyword.iskeyword(function)
            ):
                raise ValueError(f"action {action.name!r}: {function!r} is not a public function name of the module")
        return self

    def action(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)


class ManifestError(Exception):
    """A manifest that can't be used. `errors` holds (pointer, message) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.source}: {pointer or '/'}: {message}" for pointer, message in self.errors]


BINDING_TYPES = ("python", "http", "openapi", "mcp")


def _pointer(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # pydantic puts the discriminator's tag into the location (binding/python/module); drop it.
    if len(parts) >= 2 and parts[0] == "binding" and parts[1] in BINDING_TYPES:
        del parts[1]
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def parse_manifest(data: Any, source: str = "<manifest>") -> Manifest:
    """Validate a loaded document. Raises ManifestError naming each bad field."""
    if not isinstance(data, dict):
        raise ManifestError(source, [("", f"expected a mapping at the top level, got {type(data).__name__}")])
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            errors.append((_pointer(tuple(err["loc"])), msg))
        raise ManifestError(source, errors) from None


def read_document(path: Path) -> Any:
    """Read YAML or JSON (YAML is a superset, but JSON errors read better from the JSON parser)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(str(path), [("", f"cannot read: {exc}")]) from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return safe_yaml.load(text)
    except (json.JSONDecodeError, yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ManifestError(
            str(path), [("", f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}")]
        ) from None


MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


# parsed manifests by (file, mtime, size): parsing YAML and checking every action's JSON Schema
# took ~0.2 s a file on the development VM, and some callers build a registry per task (evals)
_PARSED: dict[tuple[str, int, int], Manifest] = {}
_PARSED_MAX = 256


def load_manifest(path: str | Path) -> Manifest:
    """The manifest in a file; a file unchanged since it was last parsed is not parsed again
    (each caller gets its own copy, so one registry's changes never reach another's)."""
    path = Path(path)
    try:
        stat = path.stat()
        key: tuple[str, int, int] | None = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None  # read_document reports the problem
    if key is not None and key in _PARSED:
        return _PARSED[key].model_copy(deep=True)
    manifest = parse_manifest(read_document(path), str(path))
    if key is not None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = manifest.model_copy(deep=True)
    return manifest


def manifest_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def dump_manifest(manifest: Manifest) -> dict[str, Any]:
    """A compact, loadable document: defaults left out, but the binding keeps its `type` tag."""
    data = manifest.model_dump(mode="json", exclude_defaults=True)
    data["binding"] = {"type": manifest.binding.type, **data.get("binding", {})}
    return data


def json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "toolkit tool manifest"
    return schema


def module_name_problem(module: str, allow_stdlib: bool) -> str | None:
    """Why `module` can't name a module to import, or None. Only absolute dotted names of
    identifiers; for a tool's binding, nothing of the standard library (`os`, `builtins`,
    `subprocess`...), whose functions a model must never reach directly: wrap one in a module of
    your own to offer it."""
    if not re.match(MODULE_PATTERN, module):
        return f"{module!r} is not an absolute dotted module name (like `my_tools.weather`)"
    parts = module.split(".")
    if any(keyword.iskeyword(p) for p in parts):
        return f"{module!r} holds a Python keyword"
    if not allow_stdlib and parts[0] in sys.stdlib_module_names:
        return f"{module!r} is part of the standard library; bind a module of your own that wraps what you need"
    return None


ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, environ: dict[str, str]) -> str:
    """Replace `${VAR}` with the variable's value (missing variables become empty)."""
    return ENV_REFERENCE.sub(lambda m: environ.get(m.group(1), ""), value)


def env_references(value: str) -> list[str]:
    """The variables a `${VAR}` template reads."""
    return ENV_REFERENCE.findall(value)


def sent_env_names(manifest: Manifest) -> set[str]:
    """Every environment variable whose value the tool sends or hands on: its `auth.env`, and what
    its headers (http, openapi) and server environment (mcp) read. All are secrets to redact."""
    names = set(manifest.auth.env)
    templates = getattr(manifest.binding, "headers", None) or getattr(manifest.binding, "env", None) or {}
    for value in templates.values():
        names.update(env_references(value))
    return names


if __name__ == "__main__":
    if "--write-schema" in sys.argv:
        SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2) + "\n")
        print(f"wrote {SCHEMA_PATH}")
