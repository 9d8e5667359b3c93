"""Run untrusted Python code in a subprocess with limits.

What the sandbox does:
- a fresh temporary folder as the working directory (and HOME, TMPDIR), removed afterwards;
- a minimal environment: nothing of the parent's (no API keys, no tokens);
- rlimits: CPU seconds, address space (memory), size of written files, processes, open files,
  no core dumps;
- no network where the kernel allows a new network namespace: `unshare(CLONE_NEWNET)`, or as an
  unprivileged user `unshare(CLONE_NEWUSER | CLONE_NEWNET)`. The namespace has only a loopback
  interface that is down, so every connection fails, 127.0.0.1 included. Whether it worked is
  detected on every run and reported (`network_isolated`, `network_isolation`);
- a wall-clock timeout, at which the whole process group is killed (and it is killed anyway when
  the code ends, so nothing it started in the background survives);
- stdout and stderr go to files outside the working folder (bounded by the file-size limit, so a
  chatty program can't fill memory; pipes would also keep the run open while a background child
  holds them); the result carries their first `max_output_chars` characters.

- where bubblewrap (`bwrap`) is installed, a jail (`jail.py`): only the system's `/usr`
  and the Python installation, read-only, and the work folder; new PID/IPC/UTS/network
  namespaces; the unprivileged `nobody` user when started as root. Without bwrap, code can read
  what the user can; every result says which (`filesystem_isolation`), and the setting
  `require_filesystem_isolation` refuses to run without the jail.

What it does not do: stop CPU use up to its limits, or kernel exploits. Use a VM for code that
may carry those.

How: a small launcher runs first (`python -I -S -c LAUNCHER`). It unshares the network, sets the
rlimits, reports what it did on a pipe, then `exec`s the interpreter on the user's code. Doing
this in the launcher rather than in `preexec_fn` keeps the forking parent (which has threads)
safe, and rlimits and namespaces survive `exec`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.tools.python.jail import find_bwrap, jail_argv, prepare_workdir

MB = 1024 * 1024

LAUNCHER = r"""
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
status = {"network_isolation": "not requested"}
if cfg["isolate_network"]:
    CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
    unshare = getattr(os, "unshare", None)
    if unshare is None:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def unshare(flags):
            if libc.unshare(flags) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
    try:
        unshare(CLONE_NEWNET)
        status["network_isolation"] = "network namespace"
    except OSError:
        try:
            unshare(CLONE_NEWUSER | CLONE_NEWNET)
            status["network_isolation"] = "user + network namespace"
        except OSError as exc:
            status["network_isolation"] = "unavailable: unshare failed (" + (exc.strerror or str(exc)) + ")"
for name, value in cfg["rlimits"].items():
    try:
        resource.setrlimit(getattr(resource, name), (value[0], value[1]))
    except (ValueError, OSError) as exc:
        status.setdefault("rlimit_errors", []).append(name + ": " + str(exc))
if cfg.get("drop_to"):
    try:
        os.setgroups([])
        os.setgid(cfg["drop_to"]["gid"])
        os.setuid(cfg["drop_to"]["uid"])
        status["user"] = "nobody"
    except OSError as exc:
        os.write(cfg["status_fd"], json.dumps({**status, "error": "cannot drop privileges: " + str(exc)}).encode())
        os._exit(126)
os.write(cfg["status_fd"], json.dumps(status).encode())
os.close(cfg["status_fd"])
os.execv(cfg["argv"][0], cfg["argv"])
"""


@dataclass
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock; the process group is killed after it
    cpu_s: int = 10  # CPU seconds (RLIMIT_CPU)
    memory_mb: int = 512  # address space (RLIMIT_AS)
    file_size_mb: int = 16  # largest file the code may write (RLIMIT_FSIZE)
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


@dataclass
class SandboxResult:
    ok: bool
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    reason: str | None = None  # why it failed, in words: timeout, memory limit, CPU limit, exit code
    signal: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    network_isolated: bool = False
    network_isolation: str = ""
    filesystem_isolation: str = ""  # "bubblewrap", or "none: <why>"
    files: list[dict[str, Any]] = field(default_factory=list)  # files the code left in its folder
    limits: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SandboxRefused(RuntimeError):
    """The sandbox would not run the code (network isolation required but unavailable)."""


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


def _read_capped(path: Path, cap: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            return f.read(cap), os.fstat(f.fileno()).st_size
    except OSError:
        return b"", 0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _list_files(workdir: Path, skip: str, limit: int = 50) -> list[dict[str, Any]]:
    out = []
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and path.name != skip:
            out.append({"path": str(path.relative_to(workdir)), "bytes": path.stat().st_size})
            if len(out) >= limit:
                break
    return out


def _reason(result: SandboxResult, limits: SandboxLimits) -> str | None:
    if result.timed_out:
        return f"timeout: still running after {limits.timeout_s:g} s; the process group was killed"
    if result.signal in ("SIGXCPU",) or (result.signal == "SIGKILL" and result.duration_s >= limits.cpu_s):
        return f"CPU time limit ({limits.cpu_s} s) exceeded"
    if result.signal == "SIGXFSZ":
        return f"file size limit ({limits.file_size_mb} MB) exceeded"
    if "File too large" in result.stderr:
        return f"file size limit ({limits.file_size_mb} MB) exceeded"
    if "MemoryError" in result.stderr or "Cannot allocate memory" in result.stderr:
        return f"memory limit ({limits.memory_mb} MB) exceeded"
    if result.signal:
        return f"killed by {result.signal}"
    if result.exit_code:
        return f"exit code {result.exit_code}"
    return None


async def run_python(
    code: str,
    limits: SandboxLimits | None = None,
    *,
    stdin: str | None = None,
    python: str | None = None,
    keep_dir: Path | None = None,
) -> SandboxResult:
    """Run `code` in a fresh sandboxed interpreter. Never raises for what the code does; raises
    SandboxRefused only when network isolation is required and unavailable."""
    limits = limits or SandboxLimits()
    python = python or sys.executable
    workdir = Path(tempfile.mkdtemp(prefix="toolkit-sandbox-"))
    control = Path(tempfile.mkdtemp(prefix="toolkit-sandbox-io-"))  # outside the code's folder
    script = "main.py"
    (workdir / script).write_text(code, encoding="utf-8")
    bwrap = find_bwrap(limits.bwrap_path) if limits.filesystem_isolation else None
    if bwrap is None and limits.require_filesystem_isolation:
        raise SandboxRefused("filesystem isolation is required but bubblewrap (`bwrap`) is not installed")
    jail = jail_argv(bwrap, workdir, python, isolate_network=limits.isolate_network) if bwrap else []
    status_r, status_w = os.pipe()
    argv = [python, "-I", *([] if limits.site_packages else ["-S"]), script]
    cfg = {
        # inside the jail the network namespace is bwrap's; the launcher unshares only without it
        "isolate_network": limits.isolate_network and not jail,
        "rlimits": limits.rlimits(),
        "status_fd": status_w,
        "argv": argv,
        "drop_to": prepare_workdir(workdir) if jail else None,
    }
    started = time.perf_counter()
    proc = None
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
                cwd=workdir,
                env=minimal_env(workdir),
                start_new_session=True,  # its own process group, killed as a whole
                pass_fds=(status_w,),
            )
        os.close(status_w)
        status_w = -1
        if stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin.encode())
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass
            proc.stdin.close()
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), limits.timeout_s)
        except TimeoutError:
            timed_out = True
        _kill_group(proc.pid)  # also reaps what the code left running in the background
        await proc.wait()
        cap = limits.max_output_chars * 4  # bytes; decoded and cut to characters below
        out, out_total = _read_capped(control / "stdout", cap)
        err, err_total = _read_capped(control / "stderr", cap)
        status = _read_status(status_r)
        if jail:
            status["filesystem_isolation"] = "bubblewrap"
            if limits.isolate_network:
                status["network_isolation"] = "bubblewrap network namespace"
        else:
            status["filesystem_isolation"] = "none: " + (
                "disabled in settings" if not limits.filesystem_isolation else "bubblewrap (bwrap) is not installed"
            )
        if limits.isolate_network and limits.require_network_isolation and not _isolated(status):
            raise SandboxRefused(f"network isolation is required but {status.get('network_isolation')}")
        result = _result(
            proc.returncode, out, out_total, err, err_total, timed_out, status, limits, started, jailed=bool(jail)
        )
        result.files = _list_files(workdir, script)
        return result
    finally:
        if proc is not None and proc.returncode is None:  # cancelled: don't leave it running
            _kill_group(proc.pid)
        for fd in (status_r, status_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if keep_dir is not None:
            shutil.copytree(workdir, keep_dir, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(control, ignore_errors=True)


def _read_status(fd: int) -> dict[str, Any]:
    try:
        os.set_blocking(fd, False)
        data = os.read(fd, 65536)
        return json.loads(data) if data else {"network_isolation": "unknown: the launcher did not report"}
    except (OSError, ValueError):
        return {"network_isolation": "unknown: the launcher did not report"}


def _isolated(status: dict[str, Any]) -> bool:
    return str(status.get("network_isolation", "")).endswith("namespace")


def _cut(data: bytes, total: int, max_chars: int) -> tuple[str, bool]:
    text = data.decode("utf-8", errors="replace")
    truncated = total > len(data) or len(text) > max_chars
    if truncated:
        text = text[:max_chars] + f"\n[... output truncated: {total} bytes in all ...]"
    return text, truncated


def _result(
    returncode, out, out_total, err, err_total, timed_out, status, limits, started, jailed=False
) -> SandboxResult:
    stdout, stdout_cut = _cut(out, out_total, limits.max_output_chars)
    stderr, stderr_cut = _cut(err, err_total, limits.max_output_chars)
    sig = None
    signum = -returncode if returncode is not None and returncode < 0 else None
    if jailed and returncode is not None and returncode > 128:
        signum = returncode - 128  # bubblewrap reports a child killed by signal N as exit 128+N
    if signum is not None:
        try:
            sig = signal.Signals(signum).name
        except ValueError:
            sig = str(signum)
    result = SandboxResult(
        ok=returncode == 0 and not timed_out,
        exit_code=-signum if jailed and signum else returncode,  # as without the jail: -N for signal N
        stdout=stdout,
        stderr=stderr,
        duration_s=round(time.perf_counter() - started, 3),
        timed_out=timed_out,
        signal=None if timed_out else sig,
        stdout_truncated=stdout_cut,
        stderr_truncated=stderr_cut,
        network_isolated=_isolated(status),
        network_isolation=str(status.get("network_isolation", "")),
        filesystem_isolation=str(status.get("filesystem_isolation", "")),
        limits={
            "timeout_s": limits.timeout_s,
            "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb,
            "file_size_mb": limits.file_size_mb,
            "max_processes": limits.max_processes,
        },
    )
    result.reason = _reason(result, limits)
    return result
