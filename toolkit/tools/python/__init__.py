"""The python tool: run a snippet of Python in the sandbox of `toolkit.tools.python.sandbox`.

Limits come from the tool's settings (the manifest's defaults, overridden by the user's config
under `tools: {python: {...}}`); a call may ask for a shorter or longer timeout up to
`max_timeout_s`. The result says whether the network was really cut off for this run.
"""

from __future__ import annotations

from typing import Any

from toolkit.bindings import ToolContext, ToolInputError
from toolkit.tools.python.sandbox import SandboxLimits, SandboxRefused, run_python

MAX_CODE_CHARS = 100_000


async def run_code(
    code: str, stdin: str | None = None, timeout_s: float | None = None, ctx: ToolContext | None = None
) -> dict[str, Any]:
    """Run `code` with `python` in a fresh folder; return exit code, stdout, stderr and what stopped it."""
    if not code.strip():
        raise ToolInputError("code is empty")
    if len(code) > MAX_CODE_CHARS:
        raise ToolInputError(f"code is too long ({len(code)} characters; the limit is {MAX_CODE_CHARS})")
    settings = dict(ctx.settings) if ctx else {}
    limits = SandboxLimits.from_settings(settings)
    if timeout_s is not None:
        ceiling = float(settings.get("max_timeout_s") or limits.timeout_s)
        if not 0 < timeout_s <= ceiling:
            raise ToolInputError(f"timeout_s must be more than 0 and at most {ceiling:g}")
        limits.timeout_s = float(timeout_s)
        limits.cpu_s = max(1, min(limits.cpu_s, int(timeout_s) + 1))
    try:
        result = await run_python(code, limits, stdin=stdin, python=settings.get("python") or None)
    except SandboxRefused as exc:
        raise RuntimeError(
            f"{exc}; set `require_network_isolation: false` in the python tool's settings to run anyway"
        ) from None
    out = result.to_dict()
    # keep the observation short for the model: drop what says nothing
    for key in ("signal", "reason"):
        if out[key] is None:
            del out[key]
    for key in ("stdout_truncated", "stderr_truncated", "timed_out", "files"):
        if not out[key]:
            del out[key]
    return out
