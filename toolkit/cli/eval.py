"""`toolkit eval bfcl|nestful|parallelqa|gsm8k`: score the agent on a public suite, baseline beside it.

The harnesses live in the `evals` package; this module only parses options, shows a progress bar,
prints the table (or JSON) and writes the report (`--out R.json` also writes `R.md`).
Every suite takes the same item options: `--sample N --seed S`, `--offset K`, `--limit N`, `--ids`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(help="Evaluate the engine on public suites (BFCL, NESTFUL, ParallelQA, GSM8K).", no_args_is_help=True)
err = Console(stderr=True, highlight=False)

Limit = typer.Option(
    None, "--limit", "-n", help="Keep the first N items (per category for BFCL), after --offset and --sample."
)
Sample = typer.Option(
    None,
    "--sample",
    help="Score a seeded random sample of N items drawn from the whole suite (per category for BFCL), "
    "kept in the suite's order. The same --seed draws the same items.",
)
Seed = typer.Option(0, "--seed", help="The seed of --sample's draw.")
Offset = typer.Option(0, "--offset", help="Skip the first K items (per category for BFCL) before sampling.")
Ids = typer.Option(
    None, "--ids", help="Score exactly these items (comma-separated ids, as reports list them); overrides the rest."
)
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


def _selection(sample: int | None, seed: int, offset: int, limit: int | None, ids: str | None) -> Any:
    from pydantic import ValidationError

    from evals.sampling import Selection, parse_ids

    try:
        return Selection(sample=sample, seed=seed, offset=offset, limit=limit, ids=parse_ids(ids))
    except ValidationError as exc:
        problems = "; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        err.print(f"error: {problems}")
        raise typer.Exit(2) from None


def _run(make: Callable[[Any], Coroutine[Any, Any, Any]], as_json: bool, out: str | None) -> None:
    from evals.bfcl.data import DataNotFound
    from evals.runner import print_report, progress_bar
    from toolkit.models import BackendError

    try:
        with progress_bar(err) as progress:
            report = asyncio.run(make(progress))
    except (FileNotFoundError, ValueError, BackendError, DataNotFound) as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    print_report(report, as_json)
    if out:
        json_path, md_path = report.write(out)
        err.print(f"report written to {json_path} and {md_path}")


@app.command("bfcl")
def bfcl(
    categories: str = typer.Option(
        "simple_python,multiple,parallel,parallel_multiple,irrelevance,live_simple,live_multiple,live_irrelevance",
        "--categories",
        "-c",
        help="Comma-separated BFCL categories: simple_python, multiple, parallel, parallel_multiple, irrelevance, "
        "live_simple, live_multiple, live_parallel, live_parallel_multiple, live_irrelevance, live_relevance.",
    ),
    sample: int | None = Sample,
    seed: int = Seed,
    offset: int = Offset,
    limit: int | None = Limit,
    ids: str | None = Ids,
    model: str | None = Model,
    planner: str = typer.Option("react", "--planner", "-p", help="The agent's planner, as for `toolkit run`."),
    planner_option: list[str] | None = typer.Option(
        None, "--planner-option", "-o", help="A planner setting KEY=VALUE (repeatable), as for `toolkit run`."
    ),
    as_json: bool = AsJson,
    data_dir: str | None = typer.Option(
        None,
        "--data-dir",
        help="BFCL data folder (default: $TOOLKIT_EVAL_DATA/bfcl, else the bfcl-eval package's data).",
    ),
    out: str | None = Out,
    one_at_a_time: bool = OneAtATime,
) -> None:
    """Berkeley Function Calling Leaderboard: AST-checked calls, accuracy per category.

    The agent answers each question as `toolkit run QUESTION --functions F --dry-run` would, F being
    the question's functions: the calls of its dry run are its answer (none: no function fits).
    Beside it, the same model through llama-cpp-python's chatml-function-calling."""
    from evals.bfcl.run import parse_categories, run_bfcl
    from toolkit.cli.run import _planner_options

    selection = _selection(sample, seed, offset, limit, ids)
    try:
        chosen = parse_categories(categories)
        options = _planner_options(planner_option or [])
    except ValueError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None
    _run(
        lambda p: run_bfcl(
            chosen,
            selection,
            model=model,
            data_dir=data_dir,
            progress=p,
            planner=planner,
            planner_options=options,
            side_by_side=not one_at_a_time,
        ),
        as_json,
        out,
    )


MaxSteps = typer.Option(6, "--max-steps", help="The agent's budget of planner steps, as `toolkit run --max-steps`.")


@app.command("nestful")
def nestful(
    sample: int | None = Sample,
    seed: int = Seed,
    offset: int = Offset,
    limit: int | None = Limit,
    ids: str | None = Ids,
    model: str | None = Model,
    planner: str = typer.Option(
        "dag,react",
        "--planner",
        "-p",
        help="The agent's planners in its dry run, comma-separated, a column each: dag (its first plan is the "
        "sequence, references kept) and react (its first turn's calls only).",
    ),
    as_json: bool = AsJson,
    data_dir: str | None = DataDir,
    out: str | None = Out,
    one_at_a_time: bool = OneAtATime,
) -> None:
    """NESTFUL: nested call sequences; F1 on function names and arguments, full-sequence accuracy.

    The agent answers as `toolkit run REQUEST --functions F --planner P --dry-run` would; beside it,
    the same model asked for the sequence as tool calls in one request."""
    from evals.nestful import run_nestful

    selection = _selection(sample, seed, offset, limit, ids)
    _run(
        lambda p: run_nestful(
            selection,
            model=model,
            data_dir=data_dir,
            planners=[name.strip() for name in planner.split(",") if name.strip()],
            progress=p,
            side_by_side=not one_at_a_time,
        ),
        as_json,
        out,
    )


@app.command("parallelqa")
def parallelqa(
    sample: int | None = Sample,
    seed: int = Seed,
    offset: int = Offset,
    limit: int | None = Limit,
    ids: str | None = Ids,
    model: str | None = Model,
    max_steps: int = MaxSteps,
    as_json: bool = AsJson,
    data_dir: str | None = DataDir,
    out: str | None = Out,
) -> None:
    """LLMCompiler's ParallelQA with search and math tools: accuracy and wall time, react vs dag.

    Each planner is the agent `toolkit run Q --tools search,math.calculate --planner P --approve auto`
    builds, search reading a local index of evals/parallelqa_corpus/."""
    from evals.parallelqa import run_parallelqa

    selection = _selection(sample, seed, offset, limit, ids)
    _run(
        lambda p: run_parallelqa(selection, model=model, data_dir=data_dir, progress=p, max_steps=max_steps),
        as_json,
        out,
    )


@app.command("gsm8k")
def gsm8k(
    sample: int | None = Sample,
    seed: int = Seed,
    offset: int = Offset,
    limit: int | None = Limit,
    ids: str | None = Ids,
    model: str | None = Model,
    max_steps: int = MaxSteps,
    as_json: bool = AsJson,
    data_dir: str | None = DataDir,
    out: str | None = Out,
) -> None:
    """GSM8K with the calculator tool: exact match of the final number, baseline without tools.

    The agent is `toolkit run PROBLEM --tools math.calculate` (react); the baseline, the same model
    asked the problem with no tools."""
    from evals.gsm8k import run_gsm8k

    selection = _selection(sample, seed, offset, limit, ids)
    _run(
        lambda p: run_gsm8k(selection, model=model, data_dir=data_dir, progress=p, max_steps=max_steps),
        as_json,
        out,
    )
