"""`toolkit batch TASKS.jsonl --out RESULTS.jsonl`: run many tasks, resumably, with a progress bar.

Exit status: 0 when every task of the file has an `ok` result, 1 when some failed or did not
finish (run again with --resume / --retry-failed), 2 on bad input, 130 when interrupted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from toolkit.cli.approval import APPROVAL_RULE
from toolkit.cli.output import bad_input, line
from toolkit.config import ConfigError
from toolkit.models import BackendError
from toolkit.runtime.batch import AgentOptions, BatchPlan, BatchStats, plan_batch, run_batch, unknown_tools
from toolkit.runtime.results_file import ResultsFile, ResultsFileError, ResultsWriteError, TraceFile
from toolkit.runtime.tasks_file import TaskFileError, read_tasks
from toolkit.types import TaskResult

err = Console(stderr=True, highlight=False)


def _fail(message: str) -> typer.Exit:
    return bad_input(err, message)


def task_rate(done: int, seconds: float) -> str:
    """Tasks per second, or per minute when a task takes longer than a second (a real model)."""
    rate = done / max(seconds, 1e-9)
    return f"{rate:.1f} tasks/s" if rate >= 1 or done == 0 else f"{rate * 60:.1f} tasks/min"


class BatchProgress:
    """A bar with tasks/s and tokens/s on a terminal; a plain line every 10% elsewhere (CI logs)."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.live = enabled and err.is_terminal
        self.quiet = not enabled
        self._next_report = 0.1
        self.progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rates]}"),
            TextColumn("[red]{task.fields[failed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.bar = self.progress.add_task("batch", total=total, rates="", failed="")

    def __enter__(self) -> BatchProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def update(self, result: TaskResult, stats: BatchStats) -> None:
        seen = stats.done + len(stats.unfinished)
        elapsed = max(stats.elapsed, 1e-9)
        rates = f"{task_rate(stats.done, elapsed)}  {stats.tokens / elapsed:,.0f} tok/s"
        failed = f"{len(stats.failures)} failed" if stats.failures else ""
        if self.live:
            self.progress.update(self.bar, completed=seen, rates=rates, failed=failed)
        elif not self.quiet and self.total and seen / self.total >= self._next_report:
            self._next_report = (int(seen / self.total * 10) + 1) / 10
            err.print(f"batch {seen}/{self.total}  {rates}  {failed}".rstrip())


def print_summary(plan: BatchPlan, stats: BatchStats, results: ResultsFile, tasks_ids: set[str]) -> None:
    """What the run did, on stderr. Failure reasons and ids are the tasks' own text: printed as
    they are (output.line), never read as markup."""
    elapsed = max(stats.elapsed, 1e-9)
    err.print(
        line(
            ("done", "bold"),
            f"      {stats.ok} ok, {len(stats.failures)} failed, {len(stats.unfinished)} unfinished (this run)",
        )
    )
    for reason, count, ids in stats.failure_reasons()[:10]:
        shown = ", ".join(ids[:5]) + (f", … (+{len(ids) - 5})" if len(ids) > 5 else "")
        err.print(line("  ", (f"{count} ×", "red"), f" {reason[:200]}  ", (shown, "dim")))
    if stats.unfinished:
        err.print(
            line(
                "  ",
                (f"{len(stats.unfinished)} unfinished", "yellow"),
                f" ({stats.unfinished[0][1]}): run again with --resume",
            )
        )
    if stats.trace_error:
        err.print(line(("trace", "yellow"), f"     {stats.trace_error}; the results are complete"))
    err.print(line(("time", "bold"), f"      {stats.elapsed:.2f} s  ({task_rate(stats.done, elapsed)})"))
    err.print(
        line(
            ("tokens", "bold"),
            f"    {stats.tokens:,} ({stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion; "
            f"{stats.tokens / elapsed:,.0f} tok/s)",
        )
    )
    recorded = {i: s for i, s in results.recorded.items() if i in tasks_ids}
    ok = sum(1 for s in recorded.values() if s == "ok")
    err.print(
        line(
            ("results", "bold"),
            f"   {results.path}: {len(recorded)}/{plan.total} tasks recorded, {ok} ok, {len(recorded) - ok} failed",
        )
    )


def batch(
    tasks_path: Path = typer.Argument(
        ...,
        metavar="TASKS.jsonl",
        help='One task a line: {"id": ..., "task": ..., "tools"?: [...], "max_steps"?: N, "metadata"?: {...}}',
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Results file (JSONL, one result a line)."),
    concurrency: int = typer.Option(8, "--concurrency", "-c", help="Tasks in flight (per worker with --executor ray)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model string (see `toolkit run --help`)."),
    planner: str = typer.Option("react", "--planner", "-p", help="react | dag | dfsdt | webqa"),
    tools: str | None = typer.Option(
        None, "--tools", help="Comma-separated tools or actions for every task (a task's own `tools` wins)."
    ),
    tools_path: list[str] | None = typer.Option(None, "--tools-path", help="Extra folder of manifests (repeatable)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Budget of planner steps per task (at least 1)."),
    approve: str = typer.Option(
        "deny",
        "--approve",
        help=f"{APPROVAL_RULE} No one can be asked in a batch: deny | auto (allow them all).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Keep the results file and run only the tasks it lacks (a failed task counts as done: see --retry-failed).",
    ),
    retry_failed: bool = typer.Option(
        False,
        "--retry-failed",
        help="With --resume: also run again the tasks whose result is a failure (implies --resume).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh: empty an existing results file."),
    trace: Path | None = typer.Option(None, "--trace", help="Also write every task's trace events to this JSONL file."),
    executor: str = typer.Option("local", "--executor", help="local (this process) | ray (shard over a Ray cluster)."),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address (default: start a local Ray on 127.0.0.1)."
    ),
    workers: int = typer.Option(2, "--workers", help="Ray workers (actors), each with its own backend."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress on stderr."),
) -> None:
    """Run every task of a JSONL file; append each result to --out as it finishes. Resumable."""
    if executor not in ("local", "ray"):
        raise _fail(f"--executor must be local or ray, not {executor!r}")
    if approve not in ("auto", "deny"):
        raise _fail(f"--approve must be auto or deny in a batch, not {approve!r}")
    if concurrency < 1 or workers < 1:
        raise _fail("--concurrency and --workers must be at least 1")
    if (resume or retry_failed) and overwrite:
        raise _fail("--overwrite and --resume contradict each other")
    if model is not None and not model.strip():
        raise _fail("--model is empty; give a model string (see `toolkit run --help`) or leave the option out")
    if max_steps is not None and max_steps < 1:
        raise _fail(f"--max-steps must be at least 1, not {max_steps}")
    resume = resume or retry_failed
    try:
        tasks = read_tasks(tasks_path)
    except TaskFileError as exc:
        raise _fail(str(exc)) from None
    options = AgentOptions(
        model=model,
        planner=planner,
        tools=[t.strip() for t in tools.split(",") if t.strip()] if tools else None,
        tools_path=list(tools_path or []),
        max_steps=max_steps,
        approve=approve,
    )
    try:
        agent = options.build()
        named = list(options.tools or []) + [n for t in tasks for n in (t.tools or [])]
        missing = unknown_tools(agent.registry, named)
        if missing:
            raise _fail(f"unknown tools: {', '.join(missing)} (see `toolkit tools list`)")
        if executor == "local":
            agent.backend  # load the model now: a bad model string must not fail every task  # noqa: B018
    except (ConfigError, BackendError, ValueError) as exc:
        raise _fail(str(exc)) from None
    try:
        results = ResultsFile.open(out, resume=resume, overwrite=overwrite)
    except (ResultsFileError, OSError) as exc:
        raise _fail(str(exc)) from None
    with results:
        plan = plan_batch(tasks, results, retry_failed=retry_failed)
        if results.scan.torn_bytes and resume:
            err.print(
                line(
                    ("cut a torn last line", "yellow"),
                    f" ({results.scan.torn_bytes} bytes) from {out}: its task runs again",
                )
            )
        try:
            trace_file = TraceFile(trace, resume=resume) if trace else None
        except OSError as exc:
            raise _fail(f"--trace {trace}: {exc.strerror or exc}") from None
        err.print(
            line(
                f"{plan.total} tasks: {len(plan.todo)} to run"
                + (f", {plan.skipped} already in {out}" if plan.skipped else "")
                + (f" ({plan.retried} failed ones retried)" if plan.retried else "")
                + (f"; {plan.extra_ids} results in {out} are for ids not in {tasks_path}" if plan.extra_ids else "")
            ),
            soft_wrap=True,
        )
        runner: Any = agent
        try:
            if executor == "ray":
                from toolkit.runtime.ray_executor import RayExecutor, RayUnavailable

                runner = RayExecutor(options, workers=workers, address=address, keep_trace=trace is not None)
                try:
                    runner.start(concurrency)
                except (RayUnavailable, ValueError) as exc:
                    raise _fail(str(exc)) from None
                err.print(f"ray: {workers} workers on {', '.join(sorted(set(n.split(':')[0] for n in runner.nodes)))}")
            try:
                stats = _run(plan, results, runner, concurrency, trace_file, progress)
            except ResultsWriteError as exc:
                err.print(
                    line(
                        ("error:", "red"),
                        f" {exc}; the results written so far are kept: make room, then run again with --resume",
                    ),
                    soft_wrap=True,
                )
                raise typer.Exit(1) from None
        finally:
            if trace_file is not None:
                trace_file.close()
            if executor == "ray" and hasattr(runner, "shutdown"):
                runner.shutdown()
        print_summary(plan, stats, results, {t.id for t in tasks if t.id})
        complete = all(results.recorded.get(t.id or "") == "ok" for t in tasks)
    if stats.interrupted:
        raise typer.Exit(130)
    if not complete:
        raise typer.Exit(1)


def _run(
    plan: BatchPlan, results: ResultsFile, runner: Any, concurrency: int, trace_file: TraceFile | None, show: bool
) -> BatchStats:
    bar = BatchProgress(len(plan.todo), show)
    holder: dict[str, BatchStats] = {}

    def on_result(result: TaskResult, stats: BatchStats) -> None:
        holder["stats"] = stats
        bar.update(result, stats)

    async def main() -> BatchStats:
        try:
            return await run_batch(
                plan, results, runner, concurrency=concurrency, trace=trace_file, on_result=on_result
            )
        finally:
            if hasattr(runner, "aclose"):
                await runner.aclose()

    with bar:
        try:
            stats = asyncio.run(main())
        except KeyboardInterrupt:
            stats = holder.get("stats") or BatchStats()
            stats.interrupted = True
            done = set(results.recorded)
            stats.unfinished = [(t.id or "", "interrupted") for t in plan.todo if t.id not in done]
            err.print(line(("interrupted", "yellow"), ": the results written so far are kept; run again with --resume"))
    return stats
