"""Run untrusted Python code in a subprocess with limits.

What the sandbox does:
- a fresh folder as the working directory (and HOME, TMPDIR), gone afterwards;
- a minimal environment: nothing of the parent's (no API keys, no tokens);
- rlimits: CPU seconds, address space (memory), size of written files, processes, open files,
  no core dumps;
- the kernel keyrings fenced off: a fresh session keyring, and `keyctl`, `add_key` and
  `request_key` denied by a seccomp filter (`launcher.py`), jailed or not;
- no network where the kernel allows a new network namespace: `unshare(CLONE_NEWNET)`, or as an
  unprivileged user `unshare(CLONE_NEWUSER | CLONE_NEWNET)`. The namespace has only a loopback
  interface that is down, so every connection fails, 127.0.0.1 included. Whether it worked is
  detected on every run and reported (`network_isolated`, `network_isolation`);
- a wall-clock timeout that starts before anything is written to the code's stdin, at which every
  process of the run is killed (and they are killed anyway when the code ends, so nothing it
  started in the background survives);
- stdout and stderr go to files outside the working folder (bounded by the file-size limit, so a
  chatty program can't fill memory; pipes would also keep the run open while a background child
  holds them); the result carries their first `max_output_chars` characters.
- where bubblewrap (`bwrap`) is installed, a jail (`jail.py`): only the system's `/usr` and the
  Python installation, read-only, and a /tmp of `disk_mb` (a tmpfs) holding the work folder; new
  PID/IPC/UTS/network namespaces; a user id of the run's own (no account, no other process) when started as root. Without
  bwrap, code can read and write what the user can, with no disk quota; every result says which
  (`filesystem_isolation`), and the setting `require_filesystem_isolation` refuses to run without
  the jail.

The files the code leaves are listed (`files`: regular files only, never a link's target) and,
with `keep_dir`, copied out (regular files and folders only); the folder is walked without
following links or recursing, however the code shaped it.

What it does not do: stop CPU use up to its limits, or kernel exploits. Use a VM for code that
may carry those.

How: a small launcher runs first (`python -I -S -c LAUNCHER`, see launcher.py). Doing this in
the launcher rather than in `preexec_fn` keeps the forking parent (which has threads) safe, and
rlimits, namespaces and the seccomp filter survive `exec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.tools.python import launcher
from toolkit.tools.python.jail import drop_ids, find_bwrap, jail_argv
from toolkit.tools.python.launcher import export_tree, list_files, remove_tree
from toolkit.tools.python.result import UNREPORTED, Exit, SandboxResult, build_result, parse_status

__all__ = ["SandboxLimits", "SandboxRefused", "SandboxResult", "minimal_env", "run_python"]

MB = 1024 * 1024
# the launcher runs as `python -I -S -c SOURCE`: the jail does not see the toolkit package
LAUNCHER = Path(launcher.__file__).read_text(encoding="utf-8")
SCRIPT = "main.py"
JAIL_TMP = Path("/tmp")  # inside the jail: the tmpfs that holds the work folder
SUPERVISOR_GRACE_S = 15.0  # jailed, the launcher holds the clock; the host waits this much longer
STATUS_CAP = 1 << 20


@dataclass
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock; the process group is killed after it
    cpu_s: int = 10  # CPU seconds (RLIMIT_CPU)
    memory_mb: int = 512  # address space (RLIMIT_AS)
    file_size_mb: int = 16  # largest file the code may write (RLIMIT_FSIZE)
    disk_mb: int = 64  # all the code may write, its folder and /tmp together (a tmpfs; jailed only)
    max_processes: int = 64  # new processes and threads the code may start (RLIMIT_NPROC; not enforced for root)
    max_open_files: int = 256
    max_output_chars: int = 20_000  # per stream
    isolate_network: bool = True
    require_network_isolation: bool = False  # refuse to run when isolation is unavailable
    site_packages: bool = True  # False runs `python -I -S`: the standard library only
    filesystem_isolation: bool = True  # jail the code with bubblewrap where `bwrap` is installed
    require_filesystem_isolation: bool = False  # refuse to run without it
    bwrap_path: str | None = None  # default: `bwrap` on PATH

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> SandboxLimits:
        known = {k: settings[k] for k in cls.__dataclass_fields__ if k in settings and settings[k] is not None}
        if "network" in settings:  # the manifest's user-facing name: network: false means isolated
            known["isolate_network"] = not bool(settings["network"])
        return cls(**known)

    def rlimits(self) -> dict[str, tuple[int, int]]:
        # RLIMIT_NPROC counts every process and thread of the user, not just the sandbox's: allow
        # max_processes more than the user runs now, or a desktop session would leave it none
        nproc = self.max_processes + (_user_task_count() if os.getuid() != 0 else 0)
        return {
            "RLIMIT_CPU": (self.cpu_s, self.cpu_s + 1),  # SIGXCPU at the soft limit, SIGKILL at the hard one
            "RLIMIT_AS": (self.memory_mb * MB, self.memory_mb * MB),
            "RLIMIT_FSIZE": (self.file_size_mb * MB, self.file_size_mb * MB),
            "RLIMIT_NPROC": (nproc, nproc),
            "RLIMIT_NOFILE": (self.max_open_files, self.max_open_files),
            "RLIMIT_CORE": (0, 0),
        }


def _user_task_count() -> int:
    """Processes plus threads whose real user is ours (what the kernel checks RLIMIT_NPROC against)."""
    import psutil

    uid, count = os.getuid(), 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids = proc.info.get("uids")
        if uids is not None and uids.real == uid:
            count += proc.info.get("num_threads") or 1
    return count


class SandboxRefused(RuntimeError):
    """The sandbox would not run the code (isolation required but unavailable, or not set up)."""


def minimal_env(workdir: Path) -> dict[str, str]:
    """A fresh environment: nothing from the parent's, so no secrets leak into untrusted code."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _read_pipe(fd: int, sink: Any, cap: int) -> None:
    """Read a pipe to its end into `sink` (up to `cap` bytes; the rest is read and dropped, so
    that the writer never blocks on a full pipe)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    taken = 0
    try:
        while chunk := await reader.read(1 << 16):
            if taken < cap:
                sink.write(chunk[: cap - taken])
                taken += len(chunk)
    finally:
        transport.close()


async def _feed_stdin(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


def _extract(tar_path: Path, keep_dir: Path) -> None:
    """Unpack an export into `keep_dir`: regular files and folders, with relative names only."""
    keep_dir.mkdir(parents=True, exist_ok=True)
    # By hand rather than extractall(filter="data"), whose realpath() of every member made a
    # 1,200-deep tree take minutes. The export holds no links and lists a folder before its
    # contents, so each member's parent exists and no name can lead out of keep_dir.
    with contextlib.suppress(tarfile.TarError, OSError), tarfile.open(tar_path, mode="r|") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.name.startswith("/") or any(p in ("", ".", "..") for p in parts):
                continue
            target = keep_dir.joinpath(*parts)
            with contextlib.suppress(OSError):
                if member.isdir():
                    target.mkdir(exist_ok=True)
                elif member.isreg() and target.parent.is_dir():
                    source = tar.extractfile(member)
                    if source is None:  # a regular file always has a reader; tarfile's type says it may not
                        continue
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                    with open(fd, "wb") as out, source:
                        shutil.copyfileobj(source, out)


def _end(proc_returncode: int | None, final: dict[str, Any] | None, host_timed_out: bool, jailed: bool) -> Exit:
    if final is not None:  # the jailed launcher saw the code end
        return Exit(final.get("exit_code"), final.get("signal"), bool(final.get("timed_out")) or host_timed_out)
    rc = proc_returncode
    if rc is not None and rc < 0:
        return Exit(None, -rc, host_timed_out)
    if jailed and rc is not None and rc > 128:
        return Exit(None, rc - 128, host_timed_out)  # bubblewrap reports a child killed by signal N as 128+N
    return Exit(rc, None, host_timed_out)


async def run_python(
    code: str,
    limits: SandboxLimits | None = None,
    *,
    stdin: str | None = None,
    python: str | None = None,
    keep_dir: Path | None = None,
) -> SandboxResult:
    """Run `code` in a fresh sandboxed interpreter. Never raises for what the code does; raises
    SandboxRefused when a required isolation is unavailable or the sandbox can't be set up."""
    limits = limits or SandboxLimits()
    python = python or sys.executable
    bwrap = find_bwrap(limits.bwrap_path) if limits.filesystem_isolation else None
    if bwrap is None and limits.require_filesystem_isolation:
        raise SandboxRefused("filesystem isolation is required but bubblewrap (`bwrap`) is not installed")
    started = time.perf_counter()  # the wall clock covers everything from here, stdin included
    control = Path(tempfile.mkdtemp(prefix="toolkit-sandbox-io-"))  # ours alone: never the code's
    (control / SCRIPT).write_text(code, encoding="utf-8")
    host_workdir: Path | None = None
    if bwrap:
        workdir = JAIL_TMP / f"toolkit-sandbox-{secrets.token_hex(6)}"
    else:
        workdir = host_workdir = Path(tempfile.mkdtemp(prefix="toolkit-sandbox-"))
        shutil.copyfile(control / SCRIPT, workdir / SCRIPT)
    fds: list[int] = []  # ours to close
    status_r, status_w = os.pipe()
    fds += [status_r, status_w]
    export_r = export_w = script_fd = -1
    if bwrap and keep_dir is not None:
        export_r, export_w = os.pipe()
        fds += [export_r, export_w]
    if bwrap:
        script_fd = os.open(control / SCRIPT, os.O_RDONLY)
        fds.append(script_fd)
    jail = (
        jail_argv(
            bwrap,
            workdir,
            python,
            isolate_network=limits.isolate_network,
            disk_bytes=limits.disk_mb * MB,
            script_fd=script_fd,
            script=SCRIPT,
        )
        if bwrap
        else []
    )
    cfg = {
        # inside the jail the network namespace is bwrap's; the launcher unshares only without it
        "isolate_network": limits.isolate_network and not jail,
        "rlimits": limits.rlimits(),
        "status_fd": status_w,
        "export_fd": export_w if export_w >= 0 else None,
        "argv": [python, "-I", *([] if limits.site_packages else ["-S"]), SCRIPT],
        "drop_to": drop_ids() if jail else None,
        "supervise": bool(jail),
        "timeout_s": limits.timeout_s,
        "workdir": str(workdir),
        "script": SCRIPT,
    }
    proc = None
    readers: list[asyncio.Task] = []  # the status and export pipes, read while the code runs
    tasks: list[asyncio.Task] = []  # all of ours, cancelled at the end
    export_file = None
    try:
        with open(control / "stdout", "wb") as out_file, open(control / "stderr", "wb") as err_file:
            proc = await asyncio.create_subprocess_exec(
                *jail,
                python,
                "-I",
                "-S",
                "-c",
                LAUNCHER,
                json.dumps(cfg),
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                cwd=host_workdir or control,
                env=minimal_env(workdir),
                start_new_session=True,  # its own process group, killed as a whole
                pass_fds=tuple(fd for fd in (status_w, export_w, script_fd) if fd >= 0),
            )
        for fd in (status_w, export_w, script_fd):  # the child has them: the pipes end when it does
            if fd >= 0:
                os.close(fd)
                fds.remove(fd)
        status_sink = io.BytesIO()
        fds.remove(status_r)  # the reader owns it now
        readers.append(asyncio.create_task(_read_pipe(status_r, status_sink, STATUS_CAP)))
        if export_r >= 0:
            fds.remove(export_r)
            export_file = open(control / "export.tar", "wb")  # noqa: SIM115 - closed in the finally below
            readers.append(asyncio.create_task(_read_pipe(export_r, export_file, 2 * limits.disk_mb * MB + 64 * MB)))
        tasks += readers
        if stdin is not None:
            tasks.append(asyncio.create_task(_feed_stdin(proc, stdin.encode("utf-8", "replace"))))
        host_timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), limits.timeout_s + (SUPERVISOR_GRACE_S if jail else 0))
        except TimeoutError:
            host_timed_out = True
        _kill_group(proc.pid)  # also reaps what the code left running in the background
        await proc.wait()
        await asyncio.wait(readers, timeout=5)  # the pipes: at their end now that every writer is gone
        if export_file is not None:
            export_file.close()
        lines = parse_status(status_sink.getvalue())
        status = dict(lines[0]) if lines else {"network_isolation": UNREPORTED}
        if status.get("error"):
            raise SandboxRefused(f"the sandbox could not be set up: {status['error']}")
        final = lines[-1] if jail and len(lines) > 1 and "timed_out" in lines[-1] else None
        if jail:
            status["filesystem_isolation"] = "bubblewrap"
            if limits.isolate_network:
                status["network_isolation"] = "bubblewrap network namespace"
        else:
            status["filesystem_isolation"] = "none: " + (
                "disabled in settings" if not limits.filesystem_isolation else "bubblewrap (bwrap) is not installed"
            )
        if limits.isolate_network and limits.require_network_isolation:
            if not str(status.get("network_isolation", "")).endswith("namespace"):
                raise SandboxRefused(f"network isolation is required but {status.get('network_isolation')}")
        result = build_result(
            _end(proc.returncode, final, host_timed_out, bool(jail)), control, status, limits, started
        )
        if final is not None:
            result.files = list(final.get("files") or [])
        elif host_workdir is not None:
            result.files = await asyncio.to_thread(list_files, host_workdir, {SCRIPT})
        if keep_dir is not None:
            if host_workdir is not None:
                with open(control / "export.tar", "wb") as f:
                    await asyncio.to_thread(export_tree, host_workdir, f, {SCRIPT})
            await asyncio.to_thread(_extract, control / "export.tar", Path(keep_dir))
        return result
    finally:
        if proc is not None and proc.returncode is None:  # cancelled: don't leave it running
            _kill_group(proc.pid)
        for task in tasks:
            task.cancel()
        if export_file is not None:
            export_file.close()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if host_workdir is not None:
            remove_tree(host_workdir)
        shutil.rmtree(control, ignore_errors=True)
