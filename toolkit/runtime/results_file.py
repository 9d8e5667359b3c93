"""A batch's results file: JSONL, one result a line, appended atomically so a killed run can resume.

Why a kill can't lose or double a task:
- a result line is written with a single `os.write` on an `O_APPEND` descriptor before the task
  counts as done: once `write` returns, the line is in the kernel's page cache and survives the
  process being killed; the line is wholly in the file or (at worst, a kill or a full disk
  mid-write) a prefix of it is, with no newline, at the very end;
- `fsync` (durability against a machine crash, not a process kill) runs in a background thread,
  at most `sync_interval` after each write (group commit), and on close: an fsync costs ~6 ms
  here, and one per line on the event loop stalled every task in flight (`sync_each=True` does
  it inline anyway);
- on reopening, that torn tail is cut off (its task runs again) and the ids of the complete lines
  are the tasks already done;
- an exclusive `flock` on the file keeps a second batch from writing to it at the same time (the
  kernel drops the lock with the process, so a killed run never leaves it stale).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.runtime.safe_json import dumps_line


class ResultsFileError(ValueError):
    pass


class ResultsWriteError(RuntimeError):
    """A result could not be written (a full disk, an I/O error): the run can't go on, and the
    lines written so far are kept (a torn last one is cut on resume)."""


@dataclass
class Scan:
    """What a results file holds: the status of each recorded id, and where its last whole line ends."""

    statuses: dict[str, str] = field(default_factory=dict)
    valid_bytes: int = 0  # length up to the last newline; anything past it is a torn write
    torn_bytes: int = 0
    duplicate_lines: int = 0


def _iter_lines(data: bytes) -> Iterable[tuple[int, bytes, int]]:
    """(line number, line, offset just past its newline) for each complete line."""
    start, number = 0, 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        number += 1
        yield number, data[start:end], end + 1
        start = end + 1


def scan_results(path: str | Path, data: bytes | None = None) -> Scan:
    """Read the ids and statuses recorded in a results file. A complete line that is not a result
    is not something this module writes: it is reported (with its line) rather than guessed at."""
    data = Path(path).read_bytes() if data is None else data
    scan = Scan()
    for number, line, end in _iter_lines(data):
        scan.valid_bytes = end
        if not line.strip():
            continue
        try:
            task_id, status = _id_and_status(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise ResultsFileError(
                f"{path}:{number}: not a result line ({type(exc).__name__}: {exc}); fix or remove it"
            ) from None
        if task_id in scan.statuses:
            scan.duplicate_lines += 1
        scan.statuses[task_id] = status  # the last line for an id wins
    scan.torn_bytes = len(data) - scan.valid_bytes
    return scan


# how `append` starts every line: the id and status, so that a line too deeply nested to decode
# (a tool's output in its steps) still tells which task it records
_LINE_START = re.compile(rb'^\{"id": ("(?:[^"\\]|\\.)*"), "status": ("[a-z_]+")')


def _id_and_status(line: bytes) -> tuple[str, str]:
    try:
        record = json.loads(line)
    except RecursionError:
        start = _LINE_START.match(line)
        if start is None:
            raise ValueError("nested too deeply to read") from None
        return json.loads(start.group(1)), json.loads(start.group(2))
    return str(record["id"]), str(record.get("status", "ok"))


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The complete result lines of a file, in order (a torn last line is left out)."""
    data = Path(path).read_bytes()
    return [json.loads(line) for _, line, _ in _iter_lines(data) if line.strip()]


class ResultsFile:
    """An open results file, locked for this process. `open` first, then `append` each result."""

    def __init__(self, path: Path, fd: int, scan: Scan, *, sync_each: bool = False, sync_interval: float = 0.05):
        self.path = path
        self._fd = fd
        self.scan = scan
        self.sync_each = sync_each
        self.sync_interval = sync_interval
        self._lock = threading.Lock()  # the descriptor is swapped (drop) and closed under it
        self._dirty = threading.Event()
        self._closing = False
        self._syncer: threading.Thread | None = None

    @property
    def recorded(self) -> dict[str, str]:
        """id -> status of every result in the file (on open, plus those appended since)."""
        return self.scan.statuses

    @classmethod
    def open(
        cls, path: str | Path, *, resume: bool = False, overwrite: bool = False, sync_each: bool = False
    ) -> ResultsFile:
        """Open for appending. An existing non-empty file needs `resume` (keep its results) or
        `overwrite` (start afresh); a torn last line is cut off when resuming."""
        p = Path(path)
        if p.is_dir():
            raise ResultsFileError(f"{p} is a folder; --out needs a file")
        if not p.parent.is_dir():
            raise ResultsFileError(f"{p.parent} does not exist")
        created = not p.exists()
        fd = os.open(p, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ResultsFileError(f"{p} is in use by another batch run") from None
            size = os.fstat(fd).st_size
            if size and not (resume or overwrite):
                raise ResultsFileError(
                    f"{p} already holds results: pass --resume to continue it, or --overwrite to start afresh"
                )
            if overwrite and not resume:
                os.ftruncate(fd, 0)
                scan = Scan()
            else:
                scan = scan_results(p, _read_all(fd, size))
                if scan.torn_bytes:
                    os.ftruncate(fd, scan.valid_bytes)  # the torn task has no result: it runs again
            os.fsync(fd)
            if created:
                _fsync_dir(p.parent)  # the file's name must survive a crash too, not just its bytes
        except BaseException:
            os.close(fd)
            raise
        return cls(p, fd, scan, sync_each=sync_each)

    def append(self, record: dict[str, Any]) -> None:
        """Write one result line atomically and durably. The record must carry an `id`."""
        line = dumps_line(record, default=str)
        try:
            _write_all(self._fd, line)
        except OSError as exc:
            raise ResultsWriteError(f"cannot write a result to {self.path}: {exc.strerror or exc}") from None
        if self.sync_each:
            os.fsync(self._fd)
        else:
            self._request_sync()
        self.scan.statuses[str(record["id"])] = str(record.get("status", "ok"))

    def _request_sync(self) -> None:
        if self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, name="results-fsync", daemon=True)
            self._syncer.start()
        self._dirty.set()

    def _sync_loop(self) -> None:
        while not self._closing:
            self._dirty.wait()
            if self._closing:
                return
            time.sleep(self.sync_interval)  # gather the lines written meanwhile into one fsync
            self._dirty.clear()
            with self._lock, contextlib.suppress(OSError):  # durability is best effort; close() tries again
                if self._fd >= 0:
                    os.fsync(self._fd)

    def append_raw(self, lines: bytes) -> None:
        """Write ready-made lines (e.g. a task's trace) in one write, without fsync."""
        _write_all(self._fd, lines)

    def drop(self, ids: set[str]) -> int:
        """Remove the lines of these ids (to run them again), atomically: the kept lines go to a
        new file that replaces this one by rename; a kill leaves either the old or the new file."""
        if not ids:
            return 0
        data = _read_all(self._fd, os.fstat(self._fd).st_size)
        kept, dropped = [], 0
        for _, line, _ in _iter_lines(data):
            if line.strip() and str(json.loads(line)["id"]) in ids:
                dropped += 1
                continue
            kept.append(line + b"\n")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp_fd = os.open(tmp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fcntl.flock(tmp_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(tmp_fd, b"".join(kept))
            os.fsync(tmp_fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(tmp_fd)
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            os.close(self._fd)
            self._fd = tmp_fd  # already locked, and now bearing the file's name
        for task_id in ids:
            self.scan.statuses.pop(task_id, None)
        return dropped

    def close(self) -> None:
        """Fsync what is written, then close (which releases the lock)."""
        self._closing = True
        self._dirty.set()
        if self._syncer is not None:
            self._syncer.join()
        with self._lock:
            if self._fd >= 0:
                try:
                    os.fsync(self._fd)
                except OSError:
                    pass  # the lines are written (a process kill can't lose them); a crash might
                finally:
                    os.close(self._fd)
                    self._fd = -1

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TraceFile:
    """The batch's trace: the events of each task, written in one append after its result.
    Not fsynced (a by-product, not the record of what is done); a torn tail is cut on resume."""

    def __init__(self, path: str | Path, *, resume: bool = False):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | (0 if resume else os.O_TRUNC), 0o644)
        if resume:
            size = os.fstat(self._fd).st_size
            keep = _end_of_last_line(self._fd, size)
            if keep < size:
                os.ftruncate(self._fd, keep)

    def append_raw(self, lines: bytes) -> None:
        _write_all(self._fd, lines)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _end_of_last_line(fd: int, size: int, chunk: int = 1 << 16) -> int:
    """Offset just past the last newline (0 if none), reading backwards: a trace may be large."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        at = os.pread(fd, end - start, start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _read_all(fd: int, size: int) -> bytes:
    return os.pread(fd, size, 0) if size else b""


def _write_all(fd: int, data: bytes) -> None:
    # One write does it for a regular file; the loop only guards a short write (e.g. a disk nearly
    # full), whose torn line the next open cuts off anyway.
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
