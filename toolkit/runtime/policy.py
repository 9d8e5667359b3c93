"""The approval policy. One rule, whatever the binding (python, http, openapi, mcp, a function):

    an action that is not declared read-only asks before it runs, or is denied when nobody can
    be asked.

"Declared read-only" means `annotations: {read_only: true}` (and not `destructive: true`) in the
manifest, `@tool(read_only=True)`, an MCP tool's `readOnlyHint`, or an OpenAPI operation whose
method is GET (HTTP's safe method; the lock pins the method). An action with no annotations is
not read-only.

Modes: `ask` prompts on the terminal, `auto` allows, `deny` refuses; per-tool overrides come
from the config's `tool_overrides`. The CLI's default is `ask` on an interactive terminal and
`deny` otherwise; `Agent(...)` and `Executor(...)` with no approver deny (nobody to ask), and a
caller opts in with `approver="auto"` (or `"ask"`, or its own callback).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Literal

from toolkit.registry import ResolvedAction
from toolkit.types import ToolCall

Mode = Literal["ask", "auto", "deny"]
MODES: tuple[Mode, ...] = ("ask", "auto", "deny")
# Decides whether a call may run: True runs it; False (or a string, the reason) refuses it.
Approver = Callable[[ToolCall, ResolvedAction], Awaitable[bool | str]]


def needs_approval(resolved: ResolvedAction) -> bool:
    """Everything but a declared read-only action (destructive wins over a contradictory read-only)."""
    a = resolved.action.annotations
    return not a.read_only or a.destructive


def default_mode() -> Mode:
    return "ask" if sys.stdin.isatty() and sys.stderr.isatty() else "deny"


def effects(resolved: ResolvedAction) -> str:
    a = resolved.action.annotations
    declared = [k for k in ("destructive", "open_world") if getattr(a, k)]
    return "not declared read-only" + (f"; {', '.join(declared)}" if declared else "")


def _ask_terminal(call: ToolCall, resolved: ResolvedAction) -> bool:
    sys.stderr.write(f"\nAllow {call.name}({call.arguments}) [{effects(resolved)}]? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def make_approver(mode: Mode | None = None, overrides: dict[str, Mode] | None = None) -> Approver:
    chosen: Mode = mode or default_mode()
    overrides = overrides or {}
    lock = asyncio.Lock()  # one question on the terminal at a time

    async def approve(call: ToolCall, resolved: ResolvedAction) -> bool | str:
        m = overrides.get(resolved.qualified_name) or overrides.get(resolved.tool.name) or chosen
        if m == "auto":
            return True
        if m == "deny":
            return (
                f"{resolved.qualified_name} is {effects(resolved)} and the approval policy is `deny` "
                '(allow it with --approve auto or ask, or `approver="auto"` in the API)'
            )
        async with lock:
            allowed = await asyncio.to_thread(_ask_terminal, call, resolved)
        return True if allowed else "the user refused this call"

    return approve


def resolve_approver(approver: Approver | Mode | None) -> Approver:
    """What `Agent(approver=...)` and `Executor(approver=...)` accept: a callback, a mode, or None,
    which denies (an API caller has no terminal we may assume; it opts in explicitly)."""
    if approver is None:
        return make_approver("deny")
    if isinstance(approver, str):
        if approver not in MODES:
            raise ValueError(f"approver must be a callable or one of {', '.join(MODES)}, not {approver!r}")
        return make_approver(approver)
    return approver
