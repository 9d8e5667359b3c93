"""`toolkit tools ...`: list, show, call, validate, add and import tool manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from toolkit.cli.approval import ApproveOption, check_approve
from toolkit.config import Config, load_config, tool_folders, user_tools_dir
from toolkit.lockfile import LockFile
from toolkit.manifest import ManifestError, dump_manifest, load_manifest, manifest_files
from toolkit.registry import ToolRegistry

app = typer.Typer(help="List, inspect, call, validate, add and import tools.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

ToolsPath = typer.Option(None, "--tools-path", help="Extra folder or file of manifests (repeatable).")


def build_registry(tools_path: list[str] | None, config: Config | None = None) -> ToolRegistry:
    config = config or load_config()
    return ToolRegistry.default(tool_folders(config, tools_path), tool_settings=config.tools)


@app.command("list")
def list_tools(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    tools_path: list[str] | None = ToolsPath,
) -> None:
    """List every tool, whether it is available, and why not."""
    registry = build_registry(tools_path)
    rows: list[dict[str, Any]] = [
        {
            "name": t.name,
            "version": t.manifest.version,
            "available": t.available,
            "reason": t.reason,
            "source": t.source,
            "description": t.manifest.description,
            "actions": [a.name for a in t.manifest.actions],
        }
        for t in registry.tools.values()
    ]
    if as_json:
        print(json.dumps({"tools": rows, "errors": [line for e in registry.errors for line in e.lines()]}, indent=2))
        return
    table = Table("tool", "available", "actions", "description / reason")
    for r in rows:
        table.add_row(
            r["name"],
            "[green]yes[/]" if r["available"] else "[red]no[/]",
            ", ".join(r["actions"]),
            r["description"] if r["available"] else f"[red]{r['reason']}[/]",
        )
    console.print(table)
    for e in registry.errors:
        for line in e.lines():
            err.print(f"[yellow]skipped[/] {line}")


@app.command("show")
def show(name: str, tools_path: list[str] | None = ToolsPath) -> None:
    """Show one tool's manifest, its source and availability."""
    registry = build_registry(tools_path)
    tool = registry.tools.get(name)
    if tool is None:
        err.print(f"no tool named {name!r}; see `toolkit tools list`", soft_wrap=True, markup=False)
        for line in (line for e in registry.errors for line in e.lines()):
            err.print(f"skipped {line}", soft_wrap=True, markup=False)
        raise typer.Exit(1)
    console.print(f"[bold]{tool.name}[/] {tool.manifest.version}  from {tool.source}")
    console.print("available" if tool.available else f"[red]unavailable: {tool.reason}[/]")
    console.print(yaml.safe_dump(dump_manifest(tool.manifest), sort_keys=False))


@app.command("call")
def call(
    action: str = typer.Argument(..., help="The action, TOOL.ACTION (e.g. math.calculate)."),
    arguments: str = typer.Argument("{}", help='Its arguments as a JSON object, e.g. \'{"expression": "2**10"}\'.'),
    approve: str | None = ApproveOption,
    as_json: bool = typer.Option(False, "--json", help="Print the whole observation as JSON."),
    tools_path: list[str] | None = ToolsPath,
) -> None:
    """Call one action through the executor, as an agent would: arguments validated against its
    schema, its timeout and the approval policy applied. Prints the result; exit 1 if the call
    failed (the error code and message on stderr), 2 if the arguments are not a JSON object."""
    import asyncio

    from toolkit.runtime.executor import Executor
    from toolkit.runtime.policy import make_approver
    from toolkit.types import ToolCall

    check_approve(approve, err)
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        err.print(f"the arguments are not JSON: {exc}")
        raise typer.Exit(2) from None
    if not isinstance(parsed, dict):
        err.print(f"the arguments must be a JSON object, not {type(parsed).__name__}")
        raise typer.Exit(2)
    config = load_config()
    registry = build_registry(tools_path, config)
    approver = make_approver(approve or config.approve, config.tool_overrides)  # type: ignore[arg-type]
    executor = Executor(registry, approver=approver)

    async def one():
        try:
            return await executor.execute(ToolCall(name=action, arguments=parsed))
        finally:
            await executor.aclose()

    observation = asyncio.run(one())
    if as_json:
        print(observation.model_dump_json(indent=2))
    elif observation.ok:
        print(observation.text)
    if not observation.ok:
        if not as_json:
            err.print(
                f"{observation.error.value if observation.error else 'error'}: {observation.message}", soft_wrap=True
            )
        raise typer.Exit(1)


def _validate_paths(paths: list[Path]) -> list[str]:
    """Lines `file: /pointer: message` for every problem, duplicates across files included."""
    lines: list[str] = []
    seen: dict[str, Path] = {}
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(manifest_files(path))
        elif path.exists():
            files.append(path)
        else:
            lines.append(f"{path}: /: no such file or folder")
    for file in files:
        try:
            manifest = load_manifest(file)
        except ManifestError as exc:
            lines.extend(exc.lines())
            continue
        if manifest.name in seen:
            lines.append(f"{file}: /name: tool {manifest.name!r} is already defined by {seen[manifest.name]}")
        else:
            seen[manifest.name] = file
    return lines


@app.command("validate")
def validate(paths: list[Path] = typer.Argument(..., help="Manifest files or folders.")) -> None:
    """Validate manifests. Exit 2 on any error, one line per error: file, JSON pointer, message."""
    lines = _validate_paths(paths)
    for line in lines:
        print(line)
    if lines:
        raise typer.Exit(2)
    print(f"ok: {sum(len(manifest_files(p)) if p.is_dir() else 1 for p in paths)} manifest(s) valid")


@app.command("add")
def add(
    path: Path = typer.Argument(..., help="A manifest file to install."),
    force: bool = typer.Option(False, help="Replace an existing file."),
) -> None:
    """Validate a manifest, then copy it into the user's tool folder."""
    lines = _validate_paths([path])
    if lines:
        for line in lines:
            print(line)
        raise typer.Exit(2)
    manifest = load_manifest(path)
    registry = build_registry(None)
    existing = registry.tools.get(manifest.name)
    target = user_tools_dir() / f"{manifest.name}{path.suffix}"
    if existing is not None and Path(existing.source).resolve() != target.resolve():
        err.print(f"a tool named {manifest.name!r} already exists ({existing.source})")
        raise typer.Exit(2)
    if target.exists() and not force:
        err.print(f"{target} exists; pass --force to replace it")
        raise typer.Exit(1)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    print(f"added {manifest.name} -> {target}")


@app.command("import")
def import_plugin(
    source: str = typer.Argument(
        ..., help="URL or file of an ai-plugin.json (or a site whose /.well-known/ai-plugin.json exists)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Where to write the manifest (default: the user's tool folder)."
    ),
) -> None:
    """Import a BMTools / ChatGPT plugin (ai-plugin.json + OpenAPI spec) as a manifest."""
    from toolkit.interop.plugin import PluginImportError
    from toolkit.interop.plugin import import_plugin as do_import

    try:
        manifest = do_import(source)
    except PluginImportError as exc:
        err.print(f"cannot import {source}: {exc}")
        raise typer.Exit(2) from None
    target = out or user_tools_dir() / f"{manifest.name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(dump_manifest(manifest), sort_keys=False))
    print(f"imported {manifest.name} ({len(manifest.actions)} actions) -> {target}")


@app.command("lock")
def lock(
    names: list[str] | None = typer.Argument(None, help="Tools to (re-)approve; default: every tool."),
    lock_file: Path | None = typer.Option(None, "--lock-file", help="Default: $TOOLKIT_HOME/tools.lock.json."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Change nothing; print each change and exit 1 if a tool differs from its lock (or no longer loads).",
    ),
    tools_path: list[str] | None = ToolsPath,
) -> None:
    """Pin tools: each one's manifest hash (discovered actions included) and each action's
    destination: method, URL and headers of http and OpenAPI actions (with the variables they
    send), the function of python actions, the command or URL of MCP servers. A tool that
    changes later (its manifest, the tools an MCP server or OpenAPI spec offers, a spec's server,
    path or method) is refused, with the change as the reason, until you lock it again."""
    from toolkit.lockfile import (
        LockEntry,
        UnreadableLock,
        default_lock_path,
        manifest_digest,
        read_lock,
        write_lock,
    )

    path = lock_file or default_lock_path()
    config = load_config()
    registry = ToolRegistry.default(tool_folders(config, tools_path), tool_settings=config.tools, lock_path=path)
    current = read_lock(path) or LockFile()
    if isinstance(current, UnreadableLock) and not check:
        err.print(f"{current.problem}: starting a new lock", soft_wrap=True, markup=False)
        current = LockFile()
    if check:
        changed = [
            f"{t.name}: {reason}"
            for t in registry.tools.values()
            if (reason := current.check(t.manifest, t.destinations()))
        ]
        changed += _locked_but_not_loaded(current, registry)
        for line in changed:
            print(line)
        raise typer.Exit(1 if changed else 0)
    unknown = [n for n in names or [] if n not in registry.tools]
    if unknown:
        err.print(f"no tool named {', '.join(unknown)}; see `toolkit tools list`")
        raise typer.Exit(1)
    unbound = []
    for tool in registry.tools.values():
        if not names or tool.name in names:
            destinations = tool.destinations()
            if destinations is None:
                unbound.append(tool.name)
            current.tools[tool.name] = LockEntry(
                sha256=manifest_digest(tool.manifest), source=tool.source, destinations=destinations
            )
    write_lock(path, current)
    print(f"locked {len(names) if names else len(registry.tools)} tool(s) in {path}")
    if unbound:
        err.print(
            f"not bound, so where their calls go is not pinned: {', '.join(unbound)}; they are refused once "
            "available, until locked again then",
            soft_wrap=True,
            markup=False,
        )


def _locked_but_not_loaded(lock: LockFile, registry: ToolRegistry) -> list[str]:
    """A locked tool that did not load is a change too: its file now fails to load (swapped for
    something broken, or for an alias bomb), or it is gone."""
    failures = {str(Path(e.source).resolve()): e for e in registry.errors if e.source and Path(e.source).exists()}
    lines = []
    for name, entry in sorted(lock.tools.items()):
        if name in registry.tools:
            continue
        error = failures.get(str(Path(entry.source).resolve())) if entry.source else None
        if error is not None:
            lines.append(f"{name}: changed since it was locked: its manifest no longer loads: {error.lines()[0]}")
        else:
            lines.append(f"{name}: locked, but no longer found (locked from {entry.source})")
    return lines
