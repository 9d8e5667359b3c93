"""Wikipedia (any MediaWiki site) through its search API: `/w/api.php?action=query&list=search`."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import quote

import httpx

from toolkit.tools.search.results import BackendFailed, SearchResult, clean_snippet, describe

USER_AGENT = "toolkit/0.1 (tool-learning agent engine; search tool)"  # Wikimedia asks clients to name themselves


def page_url(base_url: str, title: str) -> str:
    return f"{base_url.rstrip('/')}/wiki/{quote(title.replace(' ', '_'), safe='/:()_,')}"


class WikipediaBackend:
    name = "wikipedia"

    def __init__(self, base_url: str, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def search(self, query: str, k: int) -> list[SearchResult]:
        params = {
            "action": "query",
            "list": "search",
            "srsearch": query,
            "srlimit": str(k),
            "srprop": "snippet",
            "format": "json",
            "formatversion": "2",
            "utf8": "1",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, headers={"User-Agent": USER_AGENT}) as client:
                response = await client.get(f"{self.base_url}/w/api.php", params=params)
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendFailed(f"wikipedia ({self.base_url}): {describe(exc)}") from None
        if "error" in data:
            raise BackendFailed(f"wikipedia ({self.base_url}): {data['error'].get('info', data['error'])}")
        hits = (data.get("query") or {}).get("search")
        if not isinstance(hits, list):
            raise BackendFailed(f"wikipedia ({self.base_url}): unexpected reply (no query.search list)")
        results: list[SearchResult] = []
        for hit in hits[:k]:
            title = str(hit.get("title", ""))
            snippet = unescape(re.sub(r"<[^>]+>", "", str(hit.get("snippet", ""))))  # drops <span class="searchmatch">
            results.append(
                SearchResult(
                    title=title,
                    url=page_url(self.base_url, title),
                    snippet=clean_snippet(snippet),
                    rank=len(results) + 1,
                )
            )
        return results
