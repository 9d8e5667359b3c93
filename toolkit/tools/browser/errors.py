"""Why a browser action gave no page: refused (as WebCPM masks actions that make no sense in the
current state, or a URL the policy forbids) or failed (the page did not load)."""

from __future__ import annotations

from toolkit.bindings import ToolInputError


class ActionRefused(ToolInputError):
    """The action can't run in the current state or on this URL; the message says why and what to
    do instead. A ToolInputError, so the executor reports it as invalid_arguments and never retries."""

    def __init__(self, reason: str, allowed: list[str] | None = None):
        self.reason = reason
        self.allowed = allowed or []
        hint = f" Possible actions now: {', '.join(self.allowed)}." if self.allowed else ""
        super().__init__(f"refused: {reason}.{hint}")


class PageLoadError(RuntimeError):
    """The page could not be loaded (connection refused, timeout, not a web page)."""
