"""Choosing a backend from the settings and falling through the online ones in order."""

from __future__ import annotations

from typing import Protocol

from toolkit.tools.search.results import BackendFailed, BackendNotConfigured, SearchError, SearchResult
from toolkit.tools.search.settings import SearchSettings

OFFLINE_HINT = (
    "For offline search, build a local index with `toolkit index build FOLDER --out INDEX` "
    "and set it in your config: tools: {search: {index: INDEX}}."
)


class Backend(Protocol):
    name: str

    async def search(self, query: str, k: int) -> list[SearchResult]: ...


class NoBackendAnswered(SearchError):
    """Every online backend was unconfigured or failed; `failures` holds (backend, why) pairs."""

    def __init__(self, failures: list[tuple[str, str]]):
        self.failures = failures
        tried = "; ".join(why for _, why in failures) or "none configured"
        super().__init__(f"no online search backend answered ({tried}). {OFFLINE_HINT}")


def make_backend(name: str, settings: SearchSettings) -> Backend:
    """Build one backend; BackendNotConfigured when the settings can't support it."""
    if name == "local":
        from toolkit.tools.search.local import LocalBackend

        return LocalBackend(settings.index_path())
    if name == "searxng":
        from toolkit.tools.search.searxng import SearxNGBackend

        return SearxNGBackend(settings.searxng_url, settings.timeout_s)
    if name == "wikipedia":
        from toolkit.tools.search.wikipedia import WikipediaBackend

        return WikipediaBackend(settings.wikipedia_url, settings.timeout_s)
    if name == "ddg":
        from toolkit.tools.search.ddg import DDGBackend

        return DDGBackend(settings.ddg_region, settings.ddg_safesearch, settings.timeout_s, settings.ddg_engines)
    raise BackendNotConfigured(f"unknown search backend {name!r}")


def backend_order(settings: SearchSettings) -> list[str]:
    """Which backends `search` tries, in order. An explicit backend is tried alone; `auto` uses
    the local index when one is set (a broken index is an error, not a silent fall-back to the
    web), else the online backends."""
    if settings.backend != "auto":
        return [settings.backend]
    if settings.index:
        return ["local"]
    return list(dict.fromkeys(settings.online_backends))


async def run_search(query: str, k: int, settings: SearchSettings) -> tuple[str, list[SearchResult]]:
    """(the backend that answered, its results). An empty list is an answer: nothing matched."""
    order = backend_order(settings)
    k = max(1, min(k, settings.max_k))
    if order == ["local"]:  # a chosen or configured index: its errors (missing file...) are reported as they are
        backend = make_backend("local", settings)
        return backend.name, await backend.search(query, k)
    failures: list[tuple[str, str]] = []
    for name in order:
        try:
            backend = make_backend(name, settings)
            return backend.name, await backend.search(query, k)
        except (BackendNotConfigured, BackendFailed) as exc:
            failures.append((name, str(exc)))
    raise NoBackendAnswered(failures)
