"""Shard a batch over a Ray cluster: N worker actors, each building its own agent and backend.

The driver (the `toolkit batch` process) keeps the task file, the results file and the progress;
workers only run tasks. Each task is one call on an async actor, so a worker has up to
`concurrency` tasks in flight on one event loop (its backend batches them), and each result comes
back as soon as it is done, to be appended by the driver: the results file stays the one record of
what is done, and `--resume` works the same as in one process.

A worker that dies is dropped from the pool and its in-flight tasks are sent to the others (a task
may then have run its tools twice, but it has one result); with no worker left, the remaining tasks
come back as `cancelled` (not written), so the next `--resume` runs them.

On a real cluster each node needs toolkit installed, and the model file (for `llamacpp:` and
`scripted:` strings) at the same path; TOOLKIT_* variables, PYTHONPATH and the tools path given to
the driver are passed to the workers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Any

from toolkit.models.factory import parse_model_string
from toolkit.runtime.batch import AgentOptions
from toolkit.runtime.concurrency import bounded_as_completed
from toolkit.types import TaskInput, TaskResult


class RayUnavailable(RuntimeError):
    pass


class AgentWorker:
    """A Ray actor (wrapped with `ray.remote` at start): one agent, many tasks at once."""

    def __init__(self, options: dict[str, Any]):
        self.agent = AgentOptions.model_validate(options).build()

    def ready(self) -> str:
        self.agent.backend  # build it now: a bad model string fails here, before any task runs  # noqa: B018
        return f"{os.uname().nodename}:{os.getpid()}"

    async def run(self, task: dict[str, Any], keep_trace: bool) -> dict[str, Any]:
        item = TaskInput.model_validate(task)
        result = await self.agent.arun(item.task, item.id, tool_names=item.tools, max_steps=item.max_steps)
        if not keep_trace:
            result.trace = []  # spare the transfer
        return result.model_dump(mode="json")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _portable_model(model: str | None) -> str | None:
    """A relative model file path means the driver's folder: make it absolute for the workers."""
    if not model:
        return model
    kind, target = parse_model_string(model)
    if kind in ("scripted", "llamacpp") and target and Path(target).exists():
        return f"{kind}:{Path(target).resolve()}"
    return model


class RayExecutor:
    """`arun_many` over Ray workers. `concurrency` is per worker: workers x concurrency in flight."""

    def __init__(
        self, options: AgentOptions, *, workers: int = 2, address: str | None = None, keep_trace: bool = False
    ):
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, not {workers}")
        self.options = options.model_copy(
            update={
                "model": _portable_model(options.model),
                "tools_path": [str(Path(p).resolve()) for p in options.tools_path],
            }
        )
        self.workers = workers
        self.address = address
        self.keep_trace = keep_trace
        self._actors: list[Any] = []
        self._load: list[int] = []
        self._started_ray = False  # shut down only a Ray this executor started
        self._dead: set[int] = set()
        self._last_death = ""
        self.nodes: list[str] = []

    def start(self, concurrency: int) -> None:
        try:
            import ray
        except ImportError:
            raise RayUnavailable("the ray executor needs Ray: pip install 'toolkit[ray]'") from None
        env = {k: v for k, v in os.environ.items() if k.startswith("TOOLKIT_") or k == "PYTHONPATH"}
        common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "runtime_env": {"env_vars": env}}
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, **common)
            else:  # a private local cluster on 127.0.0.1, sized for the workers
                ray.init(
                    address="local",
                    num_cpus=max(self.workers, os.cpu_count() or 1),
                    _node_ip_address="127.0.0.1",
                    **common,
                )
            self._started_ray = True
        actor = ray.remote(AgentWorker).options(
            num_cpus=1, max_concurrency=concurrency, scheduling_strategy="SPREAD", max_restarts=0
        )
        self._actors = [actor.remote(self.options.model_dump()) for _ in range(self.workers)]
        self._load = [0] * self.workers
        try:
            self.nodes = ray.get([a.ready.remote() for a in self._actors])
        except ray.exceptions.RayError as exc:
            self.shutdown()
            raise RayUnavailable(f"a Ray worker could not build its agent: {exc}") from None

    async def _run_one(self, task: TaskInput) -> TaskResult:
        """Run on the least busy live worker; if that worker dies, on another one."""
        import ray

        while True:
            live = [i for i in range(len(self._actors)) if i not in self._dead]
            if not live:
                return TaskResult(
                    task_id=task.id or "",
                    task=task.task,
                    status="cancelled",
                    error=f"no Ray worker left ({self._last_death})",
                )
            index = min(live, key=self._load.__getitem__)
            self._load[index] += 1
            try:
                data = await self._actors[index].run.remote(task.model_dump(), self.keep_trace)
                return TaskResult.model_validate(data)
            except ray.exceptions.RayActorError as exc:  # the worker died: its tasks go to the others
                self._dead.add(index)
                self._last_death = f"worker {index} died: {_first_line(exc)}"
            except ray.exceptions.RayError as exc:
                return TaskResult(
                    task_id=task.id or "", task=task.task, status="cancelled", error=f"Ray: {_first_line(exc)}"
                )
            finally:
                self._load[index] -= 1

    async def arun_many(self, tasks: Iterable[TaskInput], concurrency: int = 8) -> AsyncGenerator[TaskResult, None]:
        if not self._actors:
            self.start(concurrency)
        async with contextlib.aclosing(
            bounded_as_completed(tasks, self._run_one, concurrency * self.workers)
        ) as results:
            async for result in results:
                yield result

    def shutdown(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
