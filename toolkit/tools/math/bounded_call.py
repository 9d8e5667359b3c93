"""Run a function in a worker process that is killed at a time limit: for pure computations
(sympy) that can't be interrupted inside a thread. The executor's timeout only abandons a thread,
which keeps burning a core until it finishes; a process can be killed, and its memory capped.

Workers are long-lived `python -c WORKER` processes that import the target's module once and then
answer one JSON request per line, so a call costs a pipe round trip, not an interpreter start and a
sympy import. A worker that runs past its limit is killed, and a replacement starts at once. The
time limit counts from when the worker is ready, so a slow start (a busy machine) isn't a timeout.

Not `multiprocessing`: its forkserver and spawn start methods re-import the caller's `__main__`
in every worker (running a user's unguarded script code), and forking a process that runs
threads is unsafe.
"""

from __future__ import annotations

import atexit
import builtins
import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import toolkit

WORKER = r"""
import importlib, json, sys
memory_mb = int(sys.argv[1])
if memory_mb:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024, memory_mb * 1024 * 1024))
for name in sys.argv[2:]:
    importlib.import_module(name)
protocol, sys.stdout = sys.stdout, sys.stderr  # what the function prints must not corrupt the protocol
protocol.write("ready\n")
protocol.flush()
for line in sys.stdin:
    request = json.loads(line)
    module_name, _, fn_name = request["target"].partition(":")
    try:
        answer = {"ok": getattr(importlib.import_module(module_name), fn_name)(**request["kwargs"])}
    except MemoryError:
        answer = {"error": "MemoryError", "message": "the computation needed more than %d MB of memory" % memory_mb}
    except Exception as exc:
        answer = {"error": type(exc).__name__, "message": str(exc)}
    try:
        text = json.dumps(answer, default=str)
    except (TypeError, ValueError) as exc:
        text = json.dumps({"error": "TypeError", "message": "the result can't be sent back as JSON: %s" % exc})
    protocol.write(text + "\n")
    protocol.flush()
"""


class CallTimeout(RuntimeError):  # not TimeoutError: asyncio.wait_for would take it for its own
    """The call ran past its time limit and its worker was killed."""


class WorkerError(RuntimeError):
    """The function raised an exception that isn't a builtin type; the message names it."""


class _Worker:
    def __init__(self, preload: tuple[str, ...], memory_mb: int):
        self.preload = preload
        package_root = str(Path(toolkit.__file__).resolve().parents[1])  # so that `toolkit` imports from a checkout too
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(memory_mb), *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            bufsize=1,
        )
        self.ready = False

    def wait_ready(self, timeout_s: float) -> None:
        if self.ready:
            return
        assert self.process.stdout is not None
        if not select.select([self.process.stdout], [], [], timeout_s)[0]:
            raise RuntimeError(f"the worker process did not start within {timeout_s:g} s")
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(
                f"the worker process failed to start (exit code {self.process.wait()}); can it import {self.preload}?"
            )
        self.ready = True

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class WorkerPool:
    """At most `max_workers` workers (one per core by default), reused across calls. A call waits for
    a free one, and the wait doesn't count against its time limit: a hundred agents computing at
    once must not start a hundred interpreters."""

    def __init__(
        self,
        preload: tuple[str, ...] = (),
        memory_mb: int = 0,
        max_workers: int | None = None,
        start_timeout_s: float = 120,
    ):
        self.start_timeout_s = start_timeout_s
        self.preload = preload
        self.memory_mb = memory_mb
        self.max_workers = max_workers or max(2, os.cpu_count() or 2)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_workers)

    def call(self, target: str, kwargs: dict[str, Any], time_limit_s: float) -> Any:
        with self._slots:
            return self._call(target, kwargs, time_limit_s)

    def _call(self, target: str, kwargs: dict[str, Any], time_limit_s: float) -> Any:
        worker = self._take()
        try:
            worker.wait_ready(self.start_timeout_s)
            assert worker.process.stdin is not None and worker.process.stdout is not None
            worker.process.stdin.write(json.dumps({"target": target, "kwargs": kwargs}) + "\n")
            worker.process.stdin.flush()
            ready, _, _ = select.select([worker.process.stdout], [], [], time_limit_s)
            if not ready:
                self._give_back(_Worker(self.preload, self.memory_mb))  # the replacement starts now, in this slot
                raise CallTimeout(f"stopped after {time_limit_s:g} s: the computation is too expensive")
            line = worker.process.stdout.readline()
            if not line:
                code = worker.process.wait()
                raise RuntimeError(
                    f"the worker process died (exit code {code}); the computation may have exceeded its memory"
                )
            answer = json.loads(line)
        except BaseException:
            worker.kill()
            raise
        self._give_back(worker)
        if "ok" in answer:
            return answer["ok"]
        raise _rebuild(answer["error"], answer["message"])

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()
        return _Worker(self.preload, self.memory_mb)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < self.max_workers:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_errors: dict[str, type[Exception]] = {}


def register_error(cls: type[Exception]) -> type[Exception]:
    """Let an exception type cross the process boundary by name (e.g. ToolInputError)."""
    _errors[cls.__name__] = cls
    return cls


def _rebuild(name: str, message: str) -> Exception:
    cls = _errors.get(name) or getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except TypeError:
            pass
    return WorkerError(f"{name}: {message}")


_pools: dict[tuple[tuple[str, ...], int], WorkerPool] = {}
_pools_lock = threading.Lock()


def call_in_process(target: str, kwargs: dict[str, Any], *, time_limit_s: float, memory_mb: int = 0) -> Any:
    """Call `module:function(**kwargs)` (JSON in, JSON out) in a worker; re-raise what it raised.
    Raises CallTimeout after `time_limit_s`, having killed the worker."""
    key = ((target.partition(":")[0],), int(memory_mb))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = WorkerPool(*key)
    return pool.call(target, kwargs, time_limit_s)


@atexit.register
def _close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
