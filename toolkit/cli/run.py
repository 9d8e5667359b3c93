"""`toolkit run TASK`: run one task, showing each step live (model calls, tool calls, observations)."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from toolkit.cli.approval import ApproveOption, check_approve
from toolkit.cli.output import bad_input, line
from toolkit.config import ConfigError
from toolkit.models import BackendError
from toolkit.models.parsing import clean_text
from toolkit.runtime.safe_json import dumps
from toolkit.runtime.trace import write_trace
from toolkit.types import TraceEvent

err = Console(stderr=True, highlight=False)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_event(task_id: str, e: TraceEvent) -> None:
    """One line per event, on stderr, so stdout keeps only the answer (or the JSON). The model's
    text and the tools' output are shown as they are, never read as markup (output.py)."""
    stamp = (f"{e.t:7.2f}s", "dim")
    if e.kind == "model_call":
        tokens = f"{e.usage.prompt_tokens}+{e.usage.completion_tokens} tok" if e.usage else ""
        err.print(line(stamp, " ", ("model", "cyan"), f" {tokens} {_short(e.text or '')}"))
    elif e.kind == "plan" and e.plan is not None:
        steps = "; ".join(_short(dumps(s), 80) for s in e.plan)
        err.print(line(stamp, " ", ("plan", "magenta"), f" {len(e.plan)} step(s): {steps}"))
    elif e.kind == "call" and e.call is not None:
        err.print(line(stamp, " ", ("call", "yellow"), f" {e.call.name}({_short(dumps(e.call.arguments), 120)})"))
    elif e.kind == "observation" and e.observation is not None:
        o = e.observation
        err.print(line(stamp, " ", ("observation", "green" if o.ok else "red"), f" {o.name}: {_short(o.text)}"))
    elif e.kind in ("replan", "backtrack", "error"):
        err.print(line(stamp, " ", (e.kind, "red"), f" {_short(e.text or '')}"))


def check_options(task: str, model: str | None, max_steps: int | None, tools: str | None) -> list[str] | None:
    """The --tools names (None: all), or typer.Exit(2) with the reason for input that can't run."""
    if not task.strip():
        raise bad_input(err, 'the task is empty; say it in words, e.g. toolkit run "What is 12 * (7 + 5)?"')
    if model is not None and not model.strip():
        raise bad_input(err, "--model is empty; give a model string (see --help) or leave the option out")
    if max_steps is not None and max_steps < 1:
        raise bad_input(err, f"--max-steps must be at least 1, not {max_steps}")
    if tools is None:
        return None
    names = [t.strip() for t in tools.split(",") if t.strip()]
    if not names:
        raise bad_input(err, f"--tools {tools!r} names no tool; give names separated by commas, e.g. --tools math")
    return names


def _planner_options(items: list[str]) -> dict:
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--planner-option expects KEY=VALUE, not {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except (ValueError, RecursionError):  # not JSON (or not JSON this process can read): a string
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
        None,
        "--tools",
        help="Comma-separated tools or actions to offer (default: all available); an unknown name is an error.",
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
        None, "--max-steps", help="Budget of planner steps, at least 1 (default: config, else 10)."
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
    tool_names = check_options(task, model, max_steps, tools)
    if functions and not dry_run:
        raise bad_input(err, "--functions declares functions without an implementation; add --dry-run")
    try:
        if trace:
            open(trace, "a").close()  # a trace that can't be written is bad input: say so before running
    except OSError as exc:
        raise bad_input(err, f"--trace {trace}: {exc.strerror or exc}") from None
    try:
        agent = build_agent(
            model,
            tools=tool_names,
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
        raise bad_input(err, str(exc)) from None
    if as_json:
        print(dumps(result.model_dump(mode="json"), indent=2))
    elif result.status == "ok":
        print(clean_text(result.answer or ""))
    else:
        err.print(line((result.status, "red"), f": {result.error}"), soft_wrap=True)
    if trace:
        try:
            write_trace(result, trace)
        except OSError as exc:
            err.print(line(("error:", "red"), f" cannot write the trace {trace}: {exc.strerror or exc}"))
            raise typer.Exit(1) from None
    if result.status != "ok":
        raise typer.Exit(1)
