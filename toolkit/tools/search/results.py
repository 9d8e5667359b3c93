"""What every search backend returns, and the errors a search can end with."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SearchResult(BaseModel):
    """One hit. `rank` starts at 1 (the best hit) within one answer."""

    title: str
    url: str
    snippet: str = ""
    rank: int = Field(ge=1)


class SearchError(Exception):
    """A search that produced no answer; the message says why and what to do."""


class BackendNotConfigured(SearchError):
    """A backend that can't run with the current settings (no URL, no index file, package missing)."""


class BackendFailed(SearchError):
    """A configured backend that did not answer (network error, bad status, unexpected reply)."""


def clean_snippet(text: str, limit: int = 300) -> str:
    """One line of at most `limit` characters: models read snippets, not layouts."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe(exc: BaseException) -> str:
    """`Type: first line of the message`: httpx appends a help URL on a second line we don't need."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
