"""`toolkit trace show|html FILE`: look at what a run did (a trace JSONL from `run --trace`, or
the JSON of `run --json`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Show traces: a tree in the terminal, or an HTML page.", no_args_is_help=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _load(file: Path, task: str | None) -> dict:
    from pydantic import ValidationError

    from toolkit.runtime.trace import read_trace

    try:
        traces = read_trace(file)
    except FileNotFoundError:
        err.print(f"error: no such file {file}")
        raise typer.Exit(2) from None
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError, IsADirectoryError) as exc:
        err.print(
            f"error: {file} is not a trace (JSONL of trace events, or the JSON of `toolkit run --json`): {str(exc).splitlines()[0]}"
        )
        raise typer.Exit(2) from None
    if task is not None:
        if task not in traces:
            err.print(f"error: no task {task!r} in {file}; it has: {', '.join(traces) or 'none'}")
            raise typer.Exit(2)
        traces = {task: traces[task]}
    if not traces:
        err.print(f"error: {file} holds no trace events")
        raise typer.Exit(2)
    return _redacted(traces)


def _redacted(traces: dict) -> dict:
    """A trace file may come from anywhere (an older toolkit, another machine): what is shown of
    it has the secrets this machine's tools send removed, as a run would have."""
    from toolkit.config import ConfigError, load_config, tool_folders
    from toolkit.models.openai import DEFAULT_KEY_ENV
    from toolkit.registry import configured_secret_names
    from toolkit.runtime.secrets import redact_model, redactor_for

    try:
        config = load_config()
    except ConfigError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    redact = redactor_for(configured_secret_names(tool_folders(config), config.tools) | {DEFAULT_KEY_ENV})
    if not redact:
        return traces
    return {task: [redact_model(redact, e) for e in events] for task, events in traces.items()}


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="Trace JSONL (`toolkit run --trace`) or result JSON (`toolkit run --json`)."),
    task: str | None = typer.Option(None, "--task", help="Only this task id (a batch trace holds many)."),
    width: int = typer.Option(120, "--width", help="Characters of arguments and observations to show."),
) -> None:
    """Print the trace as a tree: task, plan or steps, model calls, tool calls, observations."""
    from toolkit.trace_view import build_view, render_tree

    console = Console()
    for task_id, events in _load(file, task).items():
        console.print(render_tree(build_view(task_id, events), width=width))


@app.command("html")
def html(
    file: Path = typer.Argument(..., help="Trace JSONL (`toolkit run --trace`) or result JSON (`toolkit run --json`)."),
    out: Path = typer.Option(..., "--out", "-o", help="The HTML file to write."),
    task: str | None = typer.Option(None, "--task", help="Only this task id."),
    title: str | None = typer.Option(None, "--title", help="Page title (default: the file name)."),
) -> None:
    """Write one self-contained HTML page: plan graph, timeline of calls, arguments and observations, tokens."""
    from toolkit.trace_view import write_html

    traces = _load(file, task)
    path = write_html(traces, out, title=title or f"trace: {file.name}")
    err.print(f"wrote {path} ({len(traces)} task(s))")
