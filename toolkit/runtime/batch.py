"""The batch runner: many tasks from a JSONL file, results appended to a resumable JSONL file.

    tasks = read_tasks("tasks.jsonl")
    with ResultsFile.open("results.jsonl", resume=True) as out:
        plan = plan_batch(tasks, out, retry_failed=False)
        stats = asyncio.run(run_batch(plan, out, agent, concurrency=16))

The executor is anything with `arun_many(tasks, concurrency)` yielding TaskResults as they finish:
an Agent (one process), or a RayExecutor (a cluster). Each finished task is written before the
next result is taken, so what the file holds is exactly what is done.

Resume: ids already in the results file are skipped, whether they succeeded or failed (a failure
is a result: its reason is on its line). `retry_failed` drops the failed lines (status `error` or
`max_steps`) first, so those tasks run again and the file still holds one line per id. A task
that did not finish (interrupted, or its Ray worker died) has no line, so the next resume runs it.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from toolkit.models.parsing import clean_text
from toolkit.runtime.results_file import ResultsFile, TraceFile
from toolkit.runtime.safe_json import dumps_line
from toolkit.types import TaskInput, TaskResult

if TYPE_CHECKING:
    from toolkit.registry import ToolRegistry
    from toolkit.runtime.agent import Agent

FAILED = ("error", "max_steps")  # statuses written as failures; `cancelled` is never written


class AgentOptions(BaseModel):
    """How to build the agent that runs a batch: plain data, so a Ray worker can build its own."""

    model: str | None = None
    planner: str = "react"
    tools: list[str] | None = None  # offered to every task (a task's own `tools` overrides)
    tools_path: list[str] = Field(default_factory=list)
    max_steps: int | None = None
    approve: Literal["auto", "deny"] = "deny"  # no one to ask in a batch

    def build(self) -> Agent:
        from toolkit.config import load_config, tool_folders
        from toolkit.registry import ToolRegistry
        from toolkit.runtime.agent import Agent
        from toolkit.runtime.policy import make_approver

        config = load_config()
        registry = ToolRegistry.default(tool_folders(config, self.tools_path), tool_settings=config.tools)
        return Agent(
            model=self.model,
            tools=registry,
            tool_names=self.tools,
            planner=self.planner,
            max_steps=self.max_steps,
            approver=make_approver(self.approve, config.tool_overrides),
            config=config,
        )


def unknown_tools(registry: ToolRegistry, names: Iterable[str]) -> list[str]:
    """Names that are neither a tool nor a `tool.action` of the registry (the registry's `specs`
    would silently offer nothing for them)."""
    known = set(registry.tools)
    for tool in registry.tools.values():
        known.update(f"{tool.name}.{a.name}" for a in tool.manifest.actions)
    return sorted({n for n in names if n not in known})


class BatchExecutor(Protocol):
    def arun_many(self, tasks: Iterable[TaskInput], concurrency: int = 8) -> AsyncGenerator[TaskResult, None]: ...


@dataclass
class BatchPlan:
    todo: list[TaskInput]
    total: int  # tasks in the file
    skipped: int = 0  # already in the results file
    retried: int = 0  # failed before, run again (--retry-failed)
    extra_ids: int = 0  # results in the file whose id is not in the task file


def plan_batch(tasks: list[TaskInput], results: ResultsFile, *, retry_failed: bool = False) -> BatchPlan:
    """Which tasks still need a run, given what the results file holds (drops failures to retry)."""
    recorded = results.recorded
    if retry_failed:
        wanted = {t.id for t in tasks}
        again = {i for i, status in recorded.items() if status in FAILED and i in wanted}
        results.drop(again)
    else:
        again = set()
    todo = [t for t in tasks if t.id not in recorded]
    ids = {t.id for t in tasks}
    return BatchPlan(
        todo=todo,
        total=len(tasks),
        skipped=len(tasks) - len(todo),
        retried=len(again),
        extra_ids=sum(1 for i in recorded if i not in ids),
    )


@dataclass
class BatchStats:
    """What one run did. `failures` keeps (id, status, reason) of each failed task."""

    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    ok: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    unfinished: list[tuple[str, str]] = field(default_factory=list)  # (id, why): not written, rerun on resume
    prompt_tokens: int = 0
    completion_tokens: int = 0
    interrupted: bool = False
    trace_error: str | None = None  # why the trace stopped being written (the results go on)

    @property
    def done(self) -> int:
        return self.ok + len(self.failures)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def add(self, result: TaskResult) -> None:
        self.prompt_tokens += result.usage.prompt_tokens
        self.completion_tokens += result.usage.completion_tokens
        if result.status == "ok":
            self.ok += 1
        else:
            self.failures.append((result.task_id, result.status, result.error or result.status))

    def failure_reasons(self) -> list[tuple[str, int, list[str]]]:
        """(reason, count, ids) for each distinct failure reason, most common first."""
        counts = Counter(f"{status}: {reason}" for _, status, reason in self.failures)
        ids: dict[str, list[str]] = {}
        for task_id, status, reason in self.failures:
            ids.setdefault(f"{status}: {reason}", []).append(task_id)
        return [(reason, n, ids[reason]) for reason, n in counts.most_common()]


def result_record(task: TaskInput, result: TaskResult) -> dict[str, Any]:
    """One line of the results file. The trace is not in it (see --trace): steps are."""
    record: dict[str, Any] = {"id": task.id, "status": result.status, "answer": result.answer, "error": result.error}
    record.update(result.model_dump(mode="json", exclude={"task_id", "status", "answer", "error", "trace"}))
    if task.metadata is not None:
        record["metadata"] = task.metadata
    record["finished_at"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return record


def trace_lines(result: TaskResult) -> bytes:
    return b"".join(
        dumps_line({"task_id": result.task_id, **e.model_dump(mode="json", exclude_none=True)}) for e in result.trace
    )


def unwritable_record(task: TaskInput, result: TaskResult, exc: BaseException) -> tuple[dict[str, Any], TaskResult]:
    """The line written instead of a result that can't be serialised (nested too deeply, say):
    the task fails alone, with the reason on its line, rather than stopping the batch."""
    why = f"the result could not be written ({type(exc).__name__}: {str(exc)[:200]})"
    failed = result.model_copy(update={"status": "error", "error": why, "steps": [], "trace": []})
    record = {"id": task.id, "status": "error", "answer": None, "error": why, "task": clean_text(task.task)[:1000]}
    record["finished_at"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return record, failed


def _append_trace(trace: TraceFile, result: TaskResult, stats: BatchStats) -> TraceFile | None:
    """Write a task's trace; the trace is a by-product, so a failure stops it, never the batch."""
    try:
        trace.append_raw(trace_lines(result))
    except (ValueError, RecursionError, TypeError):
        return trace  # this task's events alone can't be written
    except OSError as exc:
        stats.trace_error = f"the trace {trace.path} stopped at task {result.task_id}: {exc.strerror or exc}"
        return None
    return trace


async def run_batch(
    plan: BatchPlan,
    results: ResultsFile,
    executor: BatchExecutor,
    *,
    concurrency: int = 8,
    trace: TraceFile | None = None,
    on_result: Callable[[TaskResult, BatchStats], None] | None = None,
) -> BatchStats:
    """Run the plan's tasks, appending each result as it finishes. Returns what this run did.

    The trace of a task (if `trace` is given) is written after its result: a kill between the two
    loses that task's trace, never a result. A result that can't be serialised is written as an
    error line for its task; a results file that can't be written (a full disk) raises
    ResultsWriteError, cancelling the tasks in flight: the lines written so far are kept.
    """
    stats = BatchStats()
    by_id = {t.id: t for t in plan.todo}
    try:
        # aclosing: an error here (a full disk...) cancels the tasks in flight at once
        async with contextlib.aclosing(executor.arun_many(iter(plan.todo), concurrency)) as stream:
            async for result in stream:
                task = by_id.pop(result.task_id, None)
                if task is None:
                    raise RuntimeError(f"the executor returned a result for an unknown task id {result.task_id!r}")
                if result.status == "cancelled":
                    stats.unfinished.append((result.task_id, result.error or "cancelled"))
                else:
                    try:
                        results.append(result_record(task, result))
                    except (ValueError, RecursionError, TypeError) as exc:  # this result, not the file
                        record, result = unwritable_record(task, result, exc)
                        results.append(record)
                    if trace is not None and result.trace:
                        trace = _append_trace(trace, result, stats)
                    stats.add(result)
                if on_result is not None:
                    on_result(result, stats)
    finally:
        stats.finished = time.perf_counter()
        stats.unfinished.extend((i or "", "not run") for i in by_id if i not in {u for u, _ in stats.unfinished})
    return stats
