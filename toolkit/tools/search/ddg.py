"""DuckDuckGo (and the other engines `ddgs` metasearches) through the `ddgs` package: online, no key.

Never exercised by the tests (they have no network); it is a thin adapter over `DDGS().text`.
"""

from __future__ import annotations

import asyncio

from toolkit.tools.search.results import BackendFailed, BackendNotConfigured, SearchResult, clean_snippet, describe


class DDGBackend:
    name = "ddg"

    def __init__(
        self, region: str = "wt-wt", safesearch: str = "moderate", timeout_s: float = 10.0, engines: str = "duckduckgo"
    ):
        try:
            import ddgs  # noqa: F401
        except ImportError:
            raise BackendNotConfigured(
                "ddg: the `ddgs` package is not installed (pip install 'toolkit[search]')"
            ) from None
        self.region = region
        self.safesearch = safesearch
        self.timeout_s = timeout_s
        self.engines = engines

    def _search_sync(self, query: str, k: int) -> list[SearchResult]:
        from ddgs import DDGS

        try:
            hits = DDGS(timeout=int(max(1, self.timeout_s))).text(
                query, region=self.region, safesearch=self.safesearch, max_results=k, backend=self.engines
            )
        except Exception as exc:  # noqa: BLE001 - DDGSException, and its HTTP client's transport errors as they are
            raise BackendFailed(f"ddg: {describe(exc)}") from None
        return [
            SearchResult(
                title=str(h.get("title") or h.get("href")),
                url=str(h.get("href")),
                snippet=clean_snippet(str(h.get("body") or "")),
                rank=i,
            )
            for i, h in enumerate((h for h in hits or [] if h.get("href")), start=1)
        ][:k]

    async def search(self, query: str, k: int) -> list[SearchResult]:
        return await asyncio.to_thread(self._search_sync, query, k)
