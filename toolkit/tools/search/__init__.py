"""The `search` tool: web and local search behind one action (tool_manifests/search.yaml).

Backends, one module each: `local` (SQLite FTS5 index over a folder, offline), `ddg` (DuckDuckGo
via `ddgs`), `wikipedia` (MediaWiki API), `searxng` (a self-hosted instance's JSON API). The
settings choose among them (settings.py); `run_search` is shared with the browser tool.
"""

from __future__ import annotations

from typing import Any

from toolkit.bindings import ToolContext, ToolInputError
from toolkit.tools.search.backends import NoBackendAnswered, run_search
from toolkit.tools.search.local import LocalIndex, build_index
from toolkit.tools.search.results import SearchError, SearchResult
from toolkit.tools.search.settings import SearchSettings, parse_settings

__all__ = [
    "search",
    "run_search",
    "build_index",
    "LocalIndex",
    "SearchResult",
    "SearchError",
    "NoBackendAnswered",
    "SearchSettings",
    "parse_settings",
]


async def search(query: str, k: int = 5, ctx: ToolContext | None = None) -> list[dict[str, Any]]:
    """Search with the configured backend; a list of {title, url, snippet, rank} (rank 1 is best)."""
    if not query.strip():
        raise ToolInputError("query is empty; give the words to search for")
    settings = parse_settings(ctx.settings if ctx is not None else None)
    _, results = await run_search(query, k, settings)
    return [r.model_dump() for r in results]
