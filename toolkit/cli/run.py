"""`toolkit run TASK`: run one task, showing each step live (model calls, tool calls, observations)."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from toolkit.cli.approval import ApproveOption, check_approve
from toolkit.config import ConfigError
from toolkit.models import BackendError
from toolkit.runtime.trace import write_trace
from toolkit.types import TraceEvent

err = Console(stderr=True, highlight=False)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_event(task_id: str, e: TraceEvent) -> None:
    """One line per event, on stderr, so stdout keeps only the answer (or the JSON)."""
    stamp = f"[dim]{e.t:7.2f}s[/]"
    if e.kind == "model_call":
        tokens = f"{e.usage.prompt_tokens}+{e.usage.completion_tokens} tok" if e.usage else ""
        err.print(f"{stamp} [cyan]model[/] {tokens} {_short(e.text or '')}", markup=True)
    elif e.kind == "plan" and e.plan is not None:
        err.print(
            f"{stamp} [magenta]plan[/] {len(e.plan)} step(s): " + "; ".join(_short(json.dumps(s), 80) for s in e.plan)
        )
    elif e.kind == "call" and e.call is not None:
        err.print(
            f"{stamp} [yellow]call[/] {e.call.name}({_short(json.dumps(e.call.arguments, ensure_ascii=False), 120)})"
        )
    elif e.kind == "observation" and e.observation is not None:
        o = e.observation
        colour = "green" if o.ok else "red"
        err.print(f"{stamp} [{colour}]observation[/] {o.name}: {_short(o.text)}")
    elif e.kind in ("replan", "backtrack", "error"):
        err.print(f"{stamp} [red]{e.kind}[/] {_short(e.text or '')}")


def _planner_options(items: list[str]) -> dict:
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--planner-option expects KEY=VALUE, not {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def run(
    task: str = typer.Argument(..., help="The task, in plain words."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="llamacpp:PATH.gguf | hf:REPO/FILE.gguf | openai:MODEL@URL | vllm:MODEL | scripted:FILE. Default: config, TOOLKIT_MODEL, else the embedded model.",
    ),
    tools: str | None = typer.Option(
        None, "--tools", help="Comma-separated tools or actions to offer (default: all available)."
    ),
    tools_path: list[str] | None = typer.Option(None, "--tools-path", help="Extra folder of manifests (repeatable)."),
    functions: str | None = typer.Option(
        None,
        "--functions",
        help="A JSON/YAML file of function definitions (OpenAI format: name, description, parameters as JSON "
        "Schema) to offer without an implementation; needs --dry-run. Offered alone unless --tools names more.",
    ),
    planner: str = typer.Option("react", "--planner", "-p", help="react | dag | dfsdt | webqa"),
    planner_option: list[str] | None = typer.Option(
        None,
        "--planner-option",
        "-o",
        help="A planner setting KEY=VALUE (repeatable; VALUE read as JSON when it parses), e.g. -o tool_k=3 -o max_replans=1.",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Budget of planner steps (default: config, else 10)."
    ),
    approve: str | None = ApproveOption,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Show the calls the agent would make, and run none: react's first turn that calls, or the dag's "
        "whole first plan (references to earlier results kept as written). Nothing is executed or approved.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result, trace included, as JSON."),
    trace: str | None = typer.Option(None, "--trace", help="Write the trace to this JSONL file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print the answer alone: no live steps."),
) -> None:
    """Run one task with tools and print the answer. Steps are shown live on stderr.

    With --dry-run the answer lists the calls the agent would make (none is executed)."""
    from toolkit.interop.functions import read_functions
    from toolkit.runtime.build import build_agent

    check_approve(approve, err)
    if functions and not dry_run:
        err.print("error: --functions declares functions without an implementation; add --dry-run")
        raise typer.Exit(2)
    try:
        agent = build_agent(
            model,
            tools=[t.strip() for t in tools.split(",") if t.strip()] if tools else None,
            tools_path=tools_path,
            functions=read_functions(functions) if functions else None,
            planner=planner,
            planner_options=_planner_options(planner_option or []),
            max_steps=max_steps,
            approve=approve,
            dry_run=dry_run,
            on_event=None if (quiet or as_json) else show_event,
        )
        result = agent.run(task)
    except (ConfigError, BackendError, ValueError) as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    if trace:
        write_trace(result, trace)
    if as_json:
        print(result.model_dump_json(indent=2))
    elif result.status == "ok":
        print(result.answer)
    else:
        err.print(f"[red]{result.status}[/]: {result.error}")
    if result.status != "ok":
        raise typer.Exit(1)
