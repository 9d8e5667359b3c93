"""The tool registry: loads manifests from folders, entry points and `@tool` functions, decides
what is available (and why not), and resolves `tool.action` names to bindings.

A broken or unavailable tool never stops the others from loading: its problem is recorded, in
`errors` (invalid manifests, duplicate names) or as the tool's `reason` (missing credentials,
packages or programs).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from toolkit.bindings import ActionBinding, BindingError, binding_destination, make_bindings
from toolkit.lockfile import LockFile, default_lock_path, read_lock
from toolkit.manifest import Action, Manifest, ManifestError, load_manifest, manifest_files, sent_env_names
from toolkit.types import ToolSpec

ENTRY_POINT_GROUP = "toolkit.tools"


def builtin_manifest_dir() -> Path:
    from tool_manifests import MANIFEST_DIR

    return MANIFEST_DIR


@dataclass
class RegisteredTool:
    manifest: Manifest
    source: str  # where it came from: a file path, `entry point NAME`, or `@tool module.fn`
    available: bool = True
    reason: str | None = None  # why it is unavailable
    bindings: dict[str, ActionBinding] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # manifest defaults merged with user config

    @property
    def name(self) -> str:
        return self.manifest.name

    def destinations(self) -> dict[str, dict[str, Any]] | None:
        """Where each action's calls go (what the lock pins); None when the tool is not bound."""
        if not self.bindings:
            return None
        return {name: binding_destination(b) for name, b in sorted(self.bindings.items())}


@dataclass
class ResolvedAction:
    tool: RegisteredTool
    action: Action
    binding: ActionBinding

    @property
    def qualified_name(self) -> str:
        return qualified_name(self.tool.name, self.action.name)


class UnknownToolError(LookupError):
    pass


class UnavailableToolError(LookupError):
    pass


def qualified_name(tool: str, action: str) -> str:
    """`tool.action`; just `tool` when the action bears the tool's name (one-function tools)."""
    return tool if action == tool else f"{tool}.{action}"


def split_name(qualified: str) -> tuple[str, str | None]:
    tool, _, action = qualified.partition(".")
    return tool, action or None


class ToolRegistry:
    """Tools by name. `ToolRegistry.default()` loads the built-ins, user folders and entry points."""

    def __init__(
        self,
        tool_settings: dict[str, dict[str, Any]] | None = None,
        environ: dict[str, str] | None = None,
        lock: LockFile | None = None,
    ):
        self.tools: dict[str, RegisteredTool] = {}
        self.errors: list[ManifestError] = []
        self.tool_settings = tool_settings or {}
        self.environ = environ if environ is not None else dict(os.environ)
        self.lock = lock  # pinned content hashes; a tool that changed since is refused
        # declared functions keep their own names (`ChaDri.change_drink`), which tool names can't
        # hold: their own name -> the `tool.action` registered for them (toolkit/interop/functions.py)
        self.aliases: dict[str, str] = {}
        self._alias_of: dict[str, str] = {}  # the reverse: `tool.action` -> the name the model sees

    @classmethod
    def default(
        cls,
        paths: Iterable[str | Path] = (),
        *,
        builtin: bool = True,
        entry_points: bool = True,
        tool_settings: dict[str, dict[str, Any]] | None = None,
        lock_path: Path | None = None,
    ) -> ToolRegistry:
        """`lock_path`: the lock file to enforce (default: `$TOOLKIT_HOME/tools.lock.json` if it exists)."""
        registry = cls(tool_settings=tool_settings, lock=read_lock(lock_path or default_lock_path()))
        if builtin:
            registry.load_folder(builtin_manifest_dir())
        for path in paths:
            registry.load_path(Path(path))
        if entry_points:
            registry.load_entry_points()
        return registry

    # ---- loading -------------------------------------------------------------------------

    def load_path(self, path: Path) -> None:
        if path.is_dir():
            self.load_folder(path)
        elif path.exists():
            self.load_file(path)
        else:
            self.errors.append(ManifestError(str(path), [("", "no such file or folder")]))

    def load_folder(self, folder: Path) -> None:
        for path in manifest_files(folder):
            self.load_file(path)

    def load_file(self, path: Path) -> RegisteredTool | None:
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            self.errors.append(exc)
            return None
        return self.add_manifest(manifest, source=str(path), base_dir=path.parent)

    def add_manifest(
        self,
        manifest: Manifest,
        source: str,
        base_dir: Path | None = None,
        bindings: dict[str, ActionBinding] | None = None,
    ) -> RegisteredTool | None:
        existing = self.tools.get(manifest.name)
        if existing is not None:
            self.errors.append(
                ManifestError(source, [("/name", f"tool {manifest.name!r} is already defined by {existing.source}")])
            )
            return None
        settings = {**manifest.settings, **self.tool_settings.get(manifest.name, {})}
        tool = RegisteredTool(manifest=manifest, source=source, settings=settings)
        tool.reason = self._missing_requirements(manifest, settings)
        if tool.reason is None:
            try:
                if bindings is None:
                    tool.manifest, bindings = make_bindings(manifest, base_dir)
                tool.bindings = bindings
            except BindingError as exc:
                tool.reason = str(exc)
        if tool.reason is None and self.lock is not None:
            tool.reason = self.lock.check(tool.manifest, tool.destinations())
        tool.available = tool.reason is None
        self.tools[manifest.name] = tool
        return tool

    def _missing_requirements(self, manifest: Manifest, settings: dict[str, Any]) -> str | None:
        missing_env = [v for v in manifest.auth.env if not self.environ.get(v)]
        if missing_env:
            return f"missing environment variable(s): {', '.join(missing_env)}"
        hint = f" ({manifest.requires.install_hint})" if manifest.requires.install_hint else ""
        missing_mods = [m for m in manifest.requires.python if not _module_exists(m)]
        if missing_mods:
            return f"missing Python package(s): {', '.join(missing_mods)}{hint}"
        # a program's path may be configured as the setting `<program>_path` (e.g. chromium_path)
        missing_bins = [
            b for b in manifest.requires.binaries if not _binary_exists(str(settings.get(f"{b}_path") or b))
        ]
        if missing_bins:
            return f"missing program(s): {', '.join(missing_bins)}{hint}"
        return None

    def load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point {ep.name} ({ep.value})"
            try:
                target = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
                self.errors.append(ManifestError(source, [("", f"cannot load: {exc}")]))
                continue
            self._add_entry_point_target(target, source)

    def _add_entry_point_target(self, target: Any, source: str) -> None:
        if callable(target) and not hasattr(target, "__toolkit_manifest__") and not isinstance(target, type):
            target = target()  # a factory returning a path, manifest or functions
        items = target if isinstance(target, (list, tuple)) else [target]
        for item in items:
            if isinstance(item, (str, Path)):
                self.load_path(Path(item))
            elif isinstance(item, Manifest):
                self.add_manifest(item, source=source)
            elif hasattr(item, "__toolkit_manifest__"):
                self.add_function(item)
            else:
                self.errors.append(
                    ManifestError(source, [("", f"unsupported entry point value {type(item).__name__}")])
                )

    def add_function(self, fn: Callable[..., Any], *, name: str | None = None) -> RegisteredTool | None:
        """Register a plain or `@tool`-decorated function as a one-action tool."""
        from toolkit.bindings.python import FunctionBinding
        from toolkit.decorators import function_manifest

        manifest = getattr(fn, "__toolkit_manifest__", None) or function_manifest(fn, name=name)
        if name and manifest.name != name:  # a decorated function registered under another name
            action = manifest.actions[0].model_copy(update={"name": name})
            manifest = manifest.model_copy(update={"name": name, "actions": [action]})
        source = f"@tool {fn.__module__}.{fn.__qualname__}"
        return self.add_manifest(manifest, source=source, bindings={manifest.actions[0].name: FunctionBinding(fn)})

    def add_alias(self, public: str, qualified: str) -> None:
        """Offer the action `qualified` to models as `public`, and resolve `public` to it."""
        if public in self.aliases or any(s.name == public for s in self.specs()):
            raise ValueError(f"an action named {public!r} is already registered")
        self.aliases[public] = qualified
        self._alias_of[qualified] = public

    # ---- lookup --------------------------------------------------------------------------

    def secret_env_names(self) -> set[str]:
        """The environment variables whose values the tools send: never to be shown."""
        return {name for tool in self.tools.values() for name in tool_secret_names(tool.manifest, tool.settings)}

    def available(self) -> list[RegisteredTool]:
        return [t for t in self.tools.values() if t.available]

    def resolve(self, name: str) -> ResolvedAction:
        """`tool.action` (or `tool` alone for a one-action tool, or an alias) to its binding."""
        tool_name, action_name = split_name(self.aliases.get(name, name))
        tool = self.tools.get(tool_name)
        if tool is None:
            raise UnknownToolError(f"no tool named {tool_name!r}; known: {', '.join(sorted(self.tools)) or 'none'}")
        if not tool.available:
            raise UnavailableToolError(f"tool {tool_name!r} is unavailable: {tool.reason}")
        if action_name is None:
            only = tool.manifest.actions[0].name if len(tool.manifest.actions) == 1 else None
            action_name = only or (tool_name if tool.manifest.action(tool_name) else None)
        action = tool.manifest.action(action_name or "")
        if action is None:
            names = ", ".join(qualified_name(tool_name, a.name) for a in tool.manifest.actions)
            raise UnknownToolError(f"tool {tool_name!r} has no action {action_name!r}; it has: {names}")
        return ResolvedAction(tool=tool, action=action, binding=tool.bindings[action.name])

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        """Function schemas of available actions; `names` picks tools (`math`) or actions (`math.solve`)."""
        wanted = set(names) if names is not None else None
        out: list[ToolSpec] = []
        for tool in self.available():
            for action in tool.manifest.actions:
                qualified = qualified_name(tool.name, action.name)
                public = self._alias_of.get(qualified, qualified)
                if wanted is not None and not wanted & {tool.name, qualified, f"{tool.name}.{action.name}", public}:
                    continue
                out.append(action_spec(tool.manifest, action, public))
        return out

    def to_openai(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        from toolkit.interop.openai_schema import to_openai_tools

        return to_openai_tools(self.specs(names))

    def to_langchain(self, names: list[str] | None = None, approver: Any = None) -> list[Any]:
        """LangChain StructuredTools that call through an Executor (needs langchain-core); actions
        not declared read-only are denied unless `approver` says otherwise ("auto", a callback)."""
        from toolkit.interop.langchain_tools import to_langchain_tools

        return to_langchain_tools(self, names, approver=approver)

    def add_langchain_tool(self, tool: Any, **options: Any) -> RegisteredTool | None:
        from toolkit.interop.langchain_tools import add_langchain_tool

        return add_langchain_tool(self, tool, **options)


def action_spec(manifest: Manifest, action: Action, name: str | None = None) -> ToolSpec:
    return ToolSpec(
        name=name or qualified_name(manifest.name, action.name),
        description=action.description,
        parameters=action.input_schema,
        examples=[e.model_dump() for e in action.examples],
    )


def tool_secret_names(manifest: Manifest, settings: dict[str, Any]) -> set[str]:
    """A tool's `auth.env`, the variables its header and MCP env templates read, and the ones its
    settings name (`api_key_env: OPENAI_API_KEY`, as the image tool's)."""
    names = sent_env_names(manifest)
    names.update(v for k, v in settings.items() if k.endswith("_env") and isinstance(v, str) and v)
    return names


def configured_secret_names(paths: Iterable[str | Path], tool_settings: dict[str, dict[str, Any]]) -> set[str]:
    """The secrets' names of the built-in manifests and those under `paths`, read without binding
    anything (no module imported, no server started): for commands that only show what a run
    wrote, like `toolkit trace`."""
    names: set[str] = set()
    files = manifest_files(builtin_manifest_dir())
    for path in map(Path, paths):
        files.extend(manifest_files(path) if path.is_dir() else [path] if path.is_file() else [])
    for file in files:
        try:
            manifest = load_manifest(file)
        except ManifestError:
            continue
        names |= tool_secret_names(manifest, {**manifest.settings, **tool_settings.get(manifest.name, {})})
    return names


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (Exception, SystemExit):  # noqa: BLE001 - finding `a.b` imports `a`, which may do anything
        return False


def _binary_exists(name: str) -> bool:
    if os.path.isabs(name):
        return os.access(name, os.X_OK)
    return shutil.which(name) is not None
