"""The real `toolkit` CLI in a subprocess, for the red-team tests whose surface is the CLI.

Its address space is capped, so that a regression (an alias bomb expanding, say) fails the test
instead of taking the shared machine's memory with it. TOOLKIT_HOME is the calling test's (the
`isolated_home` fixture sets it in the environment).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MEMORY_CAP = 3 << 30  # bytes: far above what any command needs, far below the machine's


def toolkit_cli(
    *args: str,
    extra_path: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    pythonpath = os.pathsep.join(str(p) for p in (REPO, extra_path) if p)
    full_env = {**os.environ, "PYTHONPATH": pythonpath, "COLUMNS": "200", **(env or {})}

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli.main", *args],
        env=full_env,
        cwd=REPO,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap_memory,
    )


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
