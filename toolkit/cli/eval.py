"""`toolkit eval bfcl|nestful|parallelqa|gsm8k`: score the engine on a public suite, baseline beside it.

The harnesses live in the `evals` package; this module only parses options, shows a progress bar,
prints the table (or JSON) and writes the report (`--out R.json` also writes `R.md`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(help="Evaluate the engine on public suites (BFCL, NESTFUL, ParallelQA, GSM8K).", no_args_is_help=True)
err = Console(stderr=True, highlight=False)

Limit = typer.Option(None, "--limit", "-n", help="Score the first N items (per category for BFCL).")
Model = typer.Option(None, "--model", "-m", help="Model string (default: the embedded model).")
AsJson = typer.Option(False, "--json", help="Print the report as JSON instead of a Markdown table.")
DataDir = typer.Option(None, "--data-dir", help="Folder holding the suite's data (default: $TOOLKIT_EVAL_DATA).")
Out = typer.Option(None, "--out", help="Write the JSON report here, and the Markdown table beside it (.md).")
OneAtATime = typer.Option(
    False,
    "--one-at-a-time",
    help="Run the baseline after the engine, each on all cores, so that each wall time is that of a run alone. "
    "Default: the two answer side by side on half the cores each, which finishes sooner.",
)


def _run(make: Callable[[Any], Coroutine[Any, Any, Any]], as_json: bool, out: str | None) -> None:
    from evals.runner import print_report, progress_bar
    from toolkit.models import BackendError

    try:
        with progress_bar(err) as progress:
            report = asyncio.run(make(progress))
    except (FileNotFoundError, ValueError, BackendError) as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    print_report(report, as_json)
    if out:
        json_path, md_path = report.write(out)
        err.print(f"report written to {json_path} and {md_path}")


@app.command("bfcl")
def bfcl(
    categories: str = typer.Option(
        "simple_python,multiple,parallel,parallel_multiple,irrelevance",
        "--categories",
        "-c",
        help="Comma-separated BFCL categories.",
    ),
    limit: int | None = Limit,
    model: str | None = Model,
    as_json: bool = AsJson,
    data_dir: str | None = typer.Option(
        None,
        "--data-dir",
        help="BFCL data folder (default: $TOOLKIT_EVAL_DATA/bfcl, else the bfcl-eval package's data).",
    ),
    out: str | None = Out,
    mode: str = typer.Option(
        "gated",
        "--mode",
        help="How the engine answers: gated (hybrid, but a question that shares 2+ words with a function's name is called without asking whether to, from the named functions if the list called none of them, one that shares no word with any function gets no call, numbers the model cut short or copied without their sign are mended from the question, and listed calls that add no value from the question are dropped), hybrid (a tool turn decides whether to call; when it calls, the calls are decoded as one constrained list), tool-turns (one backend tool turn per call, with follow-up turns for further calls) or calls-list (one request, a constrained list of calls). Every list stops at its first call that repeats an earlier one.",
    ),
    max_calls: int = typer.Option(4, "--max-calls", help="The engine's budget of calls per question."),
    one_at_a_time: bool = OneAtATime,
) -> None:
    """Berkeley Function Calling Leaderboard: AST-checked calls, accuracy per category."""
    from evals.bfcl.data import DataNotFound
    from evals.bfcl.run import parse_categories, run_bfcl

    try:
        chosen = parse_categories(categories)
    except ValueError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        _run(
            lambda p: run_bfcl(
                chosen,
                limit=limit,
                model=model,
                data_dir=data_dir,
                progress=p,
                max_calls=max_calls,
                mode=mode,
                side_by_side=not one_at_a_time,
            ),
            as_json,
            out,
        )
    except DataNotFound as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None


@app.command("nestful")
def nestful(
    limit: int | None = Limit,
    model: str | None = Model,
    planner: str = typer.Option(
        "both",
        "--planner",
        "-p",
        help="dag (the dag planner's plan), sequential (calls in one constrained request) or both.",
    ),
    as_json: bool = AsJson,
    data_dir: str | None = DataDir,
    out: str | None = Out,
    one_at_a_time: bool = OneAtATime,
) -> None:
    """NESTFUL: nested call sequences; F1 on function names and arguments, full-sequence accuracy."""
    from evals.nestful import run_nestful

    _run(
        lambda p: run_nestful(
            limit=limit, model=model, data_dir=data_dir, planner=planner, progress=p, side_by_side=not one_at_a_time
        ),
        as_json,
        out,
    )


@app.command("parallelqa")
def parallelqa(
    limit: int | None = Limit,
    model: str | None = Model,
    as_json: bool = AsJson,
    data_dir: str | None = DataDir,
    out: str | None = Out,
) -> None:
    """LLMCompiler's ParallelQA with search and math tools: accuracy and wall time, react vs dag."""
    from evals.parallelqa import run_parallelqa

    _run(lambda p: run_parallelqa(limit=limit, model=model, data_dir=data_dir, progress=p), as_json, out)


@app.command("gsm8k")
def gsm8k(
    limit: int | None = Limit,
    model: str | None = Model,
    as_json: bool = AsJson,
    data_dir: str | None = DataDir,
    out: str | None = Out,
) -> None:
    """GSM8K with the calculator tool: exact match of the final number, baseline without tools."""
    from evals.gsm8k import run_gsm8k

    _run(lambda p: run_gsm8k(limit=limit, model=model, data_dir=data_dir, progress=p), as_json, out)
