"""SearxNG, a self-hosted metasearch engine, through its JSON API (`/search?q=...&format=json`).

The instance must list `json` under `search.formats` in its settings.yml; otherwise it answers
403, and the error says so.
"""

from __future__ import annotations

import httpx

from toolkit.tools.search.results import BackendFailed, BackendNotConfigured, SearchResult, clean_snippet, describe


class SearxNGBackend:
    name = "searxng"

    def __init__(self, base_url: str | None, timeout_s: float = 10.0):
        if not base_url:
            raise BackendNotConfigured("searxng: no searxng_url is set")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def search(self, query: str, k: int) -> list[SearchResult]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.get(
                    f"{self.base_url}/search", params={"q": query, "format": "json", "pageno": "1"}
                )
                if response.status_code == 403:
                    raise BackendFailed(
                        f"searxng ({self.base_url}): 403 Forbidden; enable the json format (search.formats) in its settings.yml"
                    )
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendFailed(f"searxng ({self.base_url}): {describe(exc)}") from None
        hits = data.get("results") if isinstance(data, dict) else None
        if not isinstance(hits, list):
            raise BackendFailed(f"searxng ({self.base_url}): unexpected reply (no results list)")
        results: list[SearchResult] = []
        seen: set[str] = set()
        for hit in hits:
            url = str(hit.get("url") or "")
            if not url or url in seen:  # several engines often return the same page
                continue
            seen.add(url)
            results.append(
                SearchResult(
                    title=str(hit.get("title") or url),
                    url=url,
                    snippet=clean_snippet(str(hit.get("content") or "")),
                    rank=len(results) + 1,
                )
            )
            if len(results) == k:
                break
        return results
