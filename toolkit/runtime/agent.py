"""The Agent: a model, a registry of tools and a planner, run on tasks.

One async core (`arun`); `run` is its sync edge. Every result carries its steps, observations,
token usage, timings and trace, whatever happened: a task always returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import Any

from toolkit.config import Config, load_config, tool_folders
from toolkit.models import Backend, BackendError, load_backend, parse_model_string
from toolkit.models.openai import DEFAULT_KEY_ENV
from toolkit.models.parsing import clean_text
from toolkit.planner import Planner, make_planner
from toolkit.registry import ToolRegistry
from toolkit.runtime.concurrency import bounded_as_completed
from toolkit.runtime.context import MaxStepsReached, PlannerError, RunContext
from toolkit.runtime.dry_run import DryRunDone, describe_calls
from toolkit.runtime.executor import Executor
from toolkit.runtime.policy import Approver, Mode
from toolkit.runtime.secrets import redact_model, redactor_for
from toolkit.runtime.trace import EventSink, TraceRecorder
from toolkit.types import TaskInput, TaskResult, ToolSpec, TraceEvent

TaskItem = str | tuple[str, str] | TaskInput  # a task, (id, task), or a TaskInput with per-task options


class Agent:
    """Run tasks with tools.

    model: a model string (`llamacpp:...`, `openai:MODEL@URL`, `scripted:FILE`, ...) or a Backend;
        None takes the config's model, else the embedded default.
    tools: a ToolRegistry, or functions to register (with the built-ins), or None for the default.
    tool_names: restrict the tools offered to these tools (`math`) or actions (`math.solve`).
    planner: `react`, `dag`, `dfsdt`, `webqa` or a Planner instance.
    approver: decides on actions that are not declared read-only: a callback `(call, resolved) ->
        True | reason`, or "ask" (on the terminal), "auto" (allow) or "deny". None denies them:
        opt in with `approver="auto"` to let such actions run unasked.
    retrieve_k: when more than `retrieve_threshold` actions are on offer, offer only the `retrieve_k`
        that BM25 tool retrieval ranks best for the task (None or 0: offer all).
    dry_run: record the calls the agent would make instead of running them; the task ends once
        the planner would need their results (toolkit/runtime/dry_run.py). The result's `calls`
        are the recorded calls, its answer lists them (or is the model's answer if it called none).
    """

    def __init__(
        self,
        model: str | Backend | None = None,
        tools: ToolRegistry | Iterable[Callable[..., Any]] | None = None,
        *,
        tool_names: list[str] | None = None,
        planner: str | Planner = "react",
        planner_options: dict[str, Any] | None = None,
        max_steps: int | None = None,
        approver: Approver | Mode | None = None,
        config: Config | None = None,
        on_event: Callable[[str, TraceEvent], None] | None = None,
        executor_options: dict[str, Any] | None = None,
        retrieve_k: int | None = 8,
        retrieve_threshold: int = 64,
        dry_run: bool = False,
    ):
        self.config = config or load_config()
        if isinstance(tools, ToolRegistry):
            self.registry = tools
        else:
            self.registry = ToolRegistry.default(tool_folders(self.config), tool_settings=self.config.tools)
            for fn in tools or ():
                self.registry.add_function(fn)
        self._model = model if model is not None else self.config.model
        if isinstance(self._model, str):
            parse_model_string(self._model)  # a bad model string fails here, not inside the first task
        self._backend: Backend | None = model if not isinstance(model, (str, type(None))) else None
        self.tool_names = tool_names
        self.planner = make_planner(planner, **(planner_options or {}))
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, not {max_steps}")
        self.max_steps = max_steps or self.config.max_steps
        self.on_event = on_event
        # the values of the variables tools send, and the model's key, never appear in what we produce
        model_keys = {DEFAULT_KEY_ENV, getattr(self._backend, "api_key_env", None) or DEFAULT_KEY_ENV}
        self.redact = redactor_for(self.registry.secret_env_names() | model_keys)
        self.dry_run = dry_run
        self.executor = Executor(
            self.registry, approver=approver, **{"redact": self.redact, "dry_run": dry_run, **(executor_options or {})}
        )
        self.retrieve_k = retrieve_k
        self.retrieve_threshold = retrieve_threshold
        self._retrievers: dict[tuple[str, ...], Any] = {}  # offered action names -> ToolRetriever

    @property
    def model_name(self) -> str:
        if isinstance(self._model, str):
            return self._model
        return getattr(self._backend, "name", "default")

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = load_backend(self._model if isinstance(self._model, str) else None)
        return self._backend

    def tool_specs(self, task: str, tool_names: list[str] | None = None) -> list[ToolSpec]:
        specs = self.registry.specs(tool_names if tool_names is not None else self.tool_names)
        if not self.retrieve_k or len(specs) <= max(self.retrieve_threshold, self.retrieve_k):
            return specs
        key = tuple(s.name for s in specs)
        if key not in self._retrievers:  # the index is built once per set of offered actions
            from toolkit.retrieval import ToolRetriever

            self._retrievers = {key: ToolRetriever(specs)}
        return self._retrievers[key].top_k(task, self.retrieve_k)

    async def arun(
        self,
        task: str,
        task_id: str | None = None,
        *,
        tool_names: list[str] | None = None,
        max_steps: int | None = None,
    ) -> TaskResult:
        """Run one task. `tool_names` and `max_steps` override the agent's for this task alone."""
        task_id = task_id or os.urandom(6).hex()  # 12 hex digits, as uuid4().hex[:12] gave, cheaper
        task = clean_text(task)  # a task from JSON may hold lone surrogates; results must serialise
        sink: EventSink | None = (lambda e: self.on_event(task_id, e)) if self.on_event else None  # type: ignore[misc]
        trace = TraceRecorder(sink, redact=self.redact)
        result = TaskResult(
            task_id=task_id, task=task, planner=self.planner.name, model=self.model_name, dry_run=self.dry_run
        )
        started = time.perf_counter()
        trace.emit("task_start", text=task)
        ctx: RunContext | None = None
        try:
            ctx = RunContext(
                task=task,
                task_id=task_id,
                registry=self.registry,
                backend=self.backend,
                executor=self.executor,
                tools=self.tool_specs(task) if tool_names is None else self.tool_specs(task, tool_names),
                trace=trace,
                max_steps=max_steps or self.max_steps,
                session_id=task_id,
                redact=self.redact,
                dry_run=self.dry_run,
            )
            result.answer = await self.planner.run(ctx)
            trace.emit("answer", text=result.answer)
        except DryRunDone:
            result.answer = describe_calls(ctx.keep_recorded_calls()) if ctx is not None else None
            trace.emit("answer", text=result.answer)
        except MaxStepsReached as exc:
            result.status, result.error = "max_steps", str(exc)
        except asyncio.CancelledError:
            result.status, result.error = "cancelled", "the task was cancelled"
            trace.emit("error", text=result.error)
            self._finish(result, ctx, trace, started)
            raise
        except (PlannerError, BackendError) as exc:
            result.status, result.error = "error", str(exc)
        except Exception as exc:  # noqa: BLE001 - a task always returns; the error is on its result
            result.status, result.error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            await self.executor.close_session(task_id)  # what tools kept for this task: a browser page...
        if result.error:
            trace.emit("error", text=result.error)
        self._finish(result, ctx, trace, started)
        # the one redaction point of everything a result shows: --json, results and trace files,
        # the HTML trace (task, steps, call arguments, plan, answer and error included)
        return redact_model(self.redact, result)

    def _finish(self, result: TaskResult, ctx: RunContext | None, trace: TraceRecorder, started: float) -> None:
        if ctx is not None:
            result.steps, result.usage = ctx.steps, ctx.usage
        result.wall_s = time.perf_counter() - started
        trace.emit("task_end", usage=result.usage, text=result.status)
        result.trace = trace.events

    def run(self, task: str, task_id: str | None = None) -> TaskResult:
        """Sync edge of `arun`. Closes the backend afterwards: keep one event loop per Agent."""

        async def once() -> TaskResult:
            try:
                return await self.arun(task, task_id)
            finally:
                await self.aclose()

        return asyncio.run(once())

    async def arun_many(self, tasks: Iterable[TaskItem], concurrency: int = 8) -> AsyncGenerator[TaskResult, None]:
        """Yield results as tasks finish, at most `concurrency` in flight.

        Items: a task, (id, task), or a TaskInput. They are drawn from `tasks` lazily, as slots
        free, so a generator over a huge file is never held in memory whole.
        """

        async def one(item: TaskItem) -> TaskResult:
            if isinstance(item, TaskInput):
                return await self.arun(item.task, item.id, tool_names=item.tools, max_steps=item.max_steps)
            task_id, task = item if isinstance(item, tuple) else (None, item)
            return await self.arun(task, task_id)

        async with contextlib.aclosing(bounded_as_completed(tasks, one, concurrency)) as results:
            async for result in results:
                yield result  # closing this generator closes that one: the tasks in flight are cancelled

    def run_many(self, tasks: Iterable[TaskItem], concurrency: int = 8) -> Iterator[TaskResult]:
        """Sync edge of `arun_many`: a generator of results as they finish (`list(...)` to collect).

        Runs its own event loop, stepped once per result; closing the generator early cancels the
        tasks in flight and closes the backend.
        """
        loop = asyncio.new_event_loop()
        results = self.arun_many(tasks, concurrency)
        try:
            while True:
                try:
                    yield loop.run_until_complete(results.__anext__())
                except StopAsyncIteration:
                    break
        finally:
            loop.run_until_complete(results.aclose())
            loop.run_until_complete(self.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def aclose(self) -> None:
        await self.executor.aclose()
        if self._backend is not None:
            await self._backend.aclose()
            if isinstance(self._model, str):
                self._backend = None  # built from a string: rebuilt on next use
