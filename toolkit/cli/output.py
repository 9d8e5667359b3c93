"""Untrusted text on the console: a model's words, a tool's output, an error that quotes either.

Rich reads `[...]` in a printed string as markup (a stray `[/b]` raised MarkupError and ended the
command with a traceback) and `:name:` as an emoji code. A `Text` is printed as it is, so every
line that carries such text is built with `line(...)`; lone surrogates are replaced, since the
console cannot encode them either.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from toolkit.models.parsing import clean_text


def line(*parts: str | tuple[str, str]) -> Text:
    """A line of plain strings and (string, style) pairs, none of it read as markup."""
    return Text.assemble(*(clean_text(p) if isinstance(p, str) else (clean_text(p[0]), p[1]) for p in parts))


def bad_input(err: Console, message: str) -> typer.Exit:
    """Print `error: message` (one line per problem, never wrapped) and return the exit (status 2) to raise."""
    err.print(line(("error:", "red"), " ", message), soft_wrap=True)
    return typer.Exit(2)
