"""The approval policy for actions with side effects (annotated destructive or open_world).

`ask` prompts on the terminal, `auto` allows, `deny` refuses; per-tool overrides come from the
config's `tool_overrides`. Default: ask on an interactive terminal, deny otherwise.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Literal

from toolkit.registry import ResolvedAction
from toolkit.runtime.executor import Approver
from toolkit.types import ToolCall

Mode = Literal["ask", "auto", "deny"]


def default_mode() -> Mode:
    return "ask" if sys.stdin.isatty() and sys.stderr.isatty() else "deny"


def _ask_terminal(call: ToolCall, resolved: ResolvedAction) -> bool:
    effects = [k for k in ("destructive", "open_world") if getattr(resolved.action.annotations, k)]
    sys.stderr.write(f"\nAllow {call.name}({call.arguments}) [{', '.join(effects)}]? [y/N] ")
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
            return f"{resolved.qualified_name} has side effects and the approval policy is `deny` (use --approve auto or ask)"
        async with lock:
            allowed = await asyncio.to_thread(_ask_terminal, call, resolved)
        return True if allowed else "the user refused this call"

    return approve
