"""`--approve` for commands run from a terminal (`run`, `tools call`): one option, one check."""

from __future__ import annotations

import typer
from rich.console import Console

TERMINAL_MODES = ("ask", "auto", "deny")

APPROVAL_RULE = (
    "An action that is not declared read-only (annotations: {read_only: true}, an MCP readOnlyHint, "
    "an OpenAPI GET) asks before it runs, or is denied when nobody can be asked."
)
ApproveOption = typer.Option(
    None,
    "--approve",
    help=f"{APPROVAL_RULE} ask | auto | deny (default: the config's `approve`, else ask on a terminal, deny otherwise).",
)


def check_approve(approve: str | None, err: Console) -> None:
    """Exit 2 with the reason when `approve` is not a mode (None: the config's or the default)."""
    if approve is not None and approve not in TERMINAL_MODES:
        err.print(f"--approve must be ask, auto or deny, not {approve!r}")
        raise typer.Exit(2)
