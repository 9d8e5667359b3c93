"""What one sandboxed run gives back (`SandboxResult`), built from what the host saw: the exit,
the output files, and the launcher's status lines."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolkit.tools.python.sandbox import SandboxLimits

UNREPORTED = "unknown: the launcher did not report"


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
    keyring_isolation: str = ""  # how the kernel keyrings were fenced off
    files: list[dict[str, Any]] = field(default_factory=list)  # regular files the code left in its folder
    limits: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Exit:
    """How the code ended: exit code or signal number, and whether the wall clock stopped it."""

    exit_code: int | None
    signum: int | None
    timed_out: bool


def parse_status(data: bytes) -> list[dict[str, Any]]:
    """The launcher's status lines (JSON, one a line): the code's setup, then (jailed) the end."""
    lines = []
    for line in data.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def read_capped(path: Path, cap: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            return f.read(cap), os.fstat(f.fileno()).st_size
    except OSError:
        return b"", 0


def cut(data: bytes, total: int, max_chars: int) -> tuple[str, bool]:
    text = data.decode("utf-8", errors="replace")
    truncated = total > len(data) or len(text) > max_chars
    if truncated:
        text = text[:max_chars] + f"\n[... output truncated: {total} bytes in all ...]"
    return text, truncated


def _signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def reason(result: SandboxResult, limits: SandboxLimits) -> str | None:
    if result.timed_out:
        return f"timeout: still running after {limits.timeout_s:g} s; the process group was killed"
    if result.signal in ("SIGXCPU",) or (result.signal == "SIGKILL" and result.duration_s >= limits.cpu_s):
        return f"CPU time limit ({limits.cpu_s} s) exceeded"
    if result.signal == "SIGXFSZ" or "File too large" in result.stderr:
        return f"file size limit ({limits.file_size_mb} MB) exceeded"
    if "No space left on device" in result.stderr:
        return f"disk quota ({limits.disk_mb} MB for the work folder and /tmp together) exceeded"
    if "MemoryError" in result.stderr or "Cannot allocate memory" in result.stderr:
        return f"memory limit ({limits.memory_mb} MB) exceeded"
    if result.signal:
        return f"killed by {result.signal}"
    if result.exit_code:
        return f"exit code {result.exit_code}"
    return None


def build_result(
    end: Exit, control: Path, status: dict[str, Any], limits: SandboxLimits, started: float
) -> SandboxResult:
    cap = limits.max_output_chars * 4  # bytes; decoded and cut to characters below
    stdout, stdout_cut = cut(*read_capped(control / "stdout", cap), limits.max_output_chars)
    stderr, stderr_cut = cut(*read_capped(control / "stderr", cap), limits.max_output_chars)
    network = str(status.get("network_isolation", ""))
    result = SandboxResult(
        ok=end.exit_code == 0 and not end.timed_out,
        exit_code=-end.signum if end.signum else end.exit_code,  # -N for signal N, as subprocess says
        stdout=stdout,
        stderr=stderr,
        duration_s=round(time.perf_counter() - started, 3),
        timed_out=end.timed_out,
        signal=None if end.timed_out else _signal_name(end.signum),
        stdout_truncated=stdout_cut,
        stderr_truncated=stderr_cut,
        network_isolated=network.endswith("namespace"),
        network_isolation=network,
        filesystem_isolation=str(status.get("filesystem_isolation", "")),
        keyring_isolation=str(status.get("keyring_isolation", UNREPORTED)),
        limits={
            "timeout_s": limits.timeout_s,
            "cpu_s": limits.cpu_s,
            "memory_mb": limits.memory_mb,
            "file_size_mb": limits.file_size_mb,
            "disk_mb": limits.disk_mb,
            "max_processes": limits.max_processes,
        },
    )
    result.reason = reason(result, limits)
    return result
