"""One agent's browsing state and WebCPM's action space over it.

State: the last search's results list, the pages visited (a history stack; each page keeps its
text, cut into windows, and the window shown), the view (the results list or the current page)
and the quotes collected. An action that makes no sense in the current state is refused with the
reason and the actions possible instead, as WebCPM masks invalid actions.

Every action returns a dict; the shapes (documented in tool_manifests/browser.yaml):
  results view: {view: "results", query, backend, results: [{index, title, url, snippet, rank}], actions}
  page view:    {view: "page", url, title, status, extractor, window, windows, at_top, at_end, text, actions}
  quote:        {quote: {index, text, url, title}, quotes, actions}
Every dict carries `actions`: the actions valid in the new state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from toolkit.tools.browser.errors import ActionRefused
from toolkit.tools.browser.page import HostHold, LoadedPage, PageDriver
from toolkit.tools.browser.settings import BrowserSettings
from toolkit.tools.browser.text import Window, find_spans, readable_text, split_windows, window_of
from toolkit.tools.browser.urls import URLPolicy

ALL_ACTIONS = [
    "search",
    "load",
    "open",
    "scroll_down",
    "scroll_up",
    "scroll_top",
    "back",
    "find",
    "quote",
    "merge_quotes",
    "finish",
    "fetch",
]
MIN_QUOTE_CHARS = 3


@dataclass
class PageState:
    url: str
    title: str
    status: int | None
    text: str  # the readable text shown in windows
    inner_text: str  # everything the page displays; quotes may come from either
    extractor: str
    windows: list[Window]
    window: int = 0

    @classmethod
    def from_loaded(cls, loaded: LoadedPage, window_chars: int) -> PageState:
        text, extractor = readable_text(loaded.html, loaded.inner_text, loaded.url)
        return cls(
            url=loaded.url,
            title=loaded.title or loaded.url,
            status=loaded.status,
            text=text,
            inner_text=loaded.inner_text,
            extractor=extractor,
            windows=split_windows(text, window_chars),
        )


@dataclass
class Quote:
    text: str
    url: str
    title: str

    def as_dict(self, index: int) -> dict[str, Any]:
        return {"index": index, "text": self.text, "url": self.url, "title": self.title}


@dataclass
class BrowserSession:
    settings: BrowserSettings
    driver: PageDriver = field(init=False)
    query: str | None = None
    backend: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    history: list[PageState] = field(default_factory=list)  # history[-1] is the current page
    on_page: bool = False  # False: the view is the results list
    quotes: list[Quote] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)  # every page loaded, in order, once
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one action at a time per session
    hold: HostHold | None = None  # the agent's hold that keeps the browser open between its tasks

    def __post_init__(self) -> None:
        self.driver = PageDriver(self.settings, URLPolicy(self.settings), self.hold)

    @property
    def page(self) -> PageState | None:
        return self.history[-1] if self.on_page and self.history else None

    # ---- what is possible now ---------------------------------------------------------------

    def allowed_actions(self) -> list[str]:
        page = self.page
        ok = {"search", "open", "fetch", "finish"}
        if self.results:
            ok.add("load")
        if page is not None:
            ok |= {"find", "quote", "back"}
            if page.window < len(page.windows) - 1:
                ok.add("scroll_down")
            if page.window > 0:
                ok |= {"scroll_up", "scroll_top"}
        if len(self.quotes) >= 2:
            ok.add("merge_quotes")
        return [a for a in ALL_ACTIONS if a in ok]

    def refuse(self, reason: str) -> ActionRefused:
        return ActionRefused(reason, self.allowed_actions())

    def require_page(self, action: str) -> PageState:
        if self.page is None:
            where = "the results list is shown" if self.results else "no page is open"
            raise self.refuse(f"{action} needs an open page, and {where}; use load or open first")
        return self.page

    # ---- views ----------------------------------------------------------------------------

    def results_view(self) -> dict[str, Any]:
        return {
            "view": "results",
            "query": self.query,
            "backend": self.backend,
            "results": self.results,
            "actions": self.allowed_actions(),
        }

    def page_view(self, **extra: Any) -> dict[str, Any]:
        page = self.page
        assert page is not None
        w = page.windows[page.window]
        return {
            "view": "page",
            "url": page.url,
            "title": page.title,
            "status": page.status,
            "extractor": page.extractor,
            "window": page.window,
            "windows": len(page.windows),
            "at_top": page.window == 0,
            "at_end": page.window == len(page.windows) - 1,
            "text": page.text[w.start : w.end].strip(),
            **extra,
            "actions": self.allowed_actions(),
        }

    # ---- actions --------------------------------------------------------------------------

    def set_results(self, query: str, backend: str, results: list[dict[str, Any]]) -> dict[str, Any]:
        self.query, self.backend = query, backend
        self.results = [{"index": i, **r} for i, r in enumerate(results[: self.settings.max_results])]
        self.on_page = False
        return self.results_view()

    async def load(self, index: int) -> dict[str, Any]:
        if not self.results:
            raise self.refuse("load needs a results list; search first")
        if not 0 <= index < len(self.results):
            raise self.refuse(f"there is no result {index}; the results are numbered 0 to {len(self.results) - 1}")
        url = self.results[index]["url"]
        trusted = self.backend == "local" and url.startswith("file:")  # the user's own indexed files
        return await self._navigate(await self.driver.policy.require(url, trusted_file=trusted))

    async def open(self, url: str) -> dict[str, Any]:
        return await self._navigate(await self.driver.policy.require(url))

    async def _navigate(self, url: str) -> dict[str, Any]:
        loaded = await self.driver.load(url)
        self.history.append(PageState.from_loaded(loaded, self.settings.window_chars))
        if loaded.url not in self.visited:
            self.visited.append(loaded.url)
        self.on_page = True
        return self.page_view()

    def scroll(self, action: str) -> dict[str, Any]:
        page = self.require_page(action)
        last = len(page.windows) - 1
        if action == "scroll_down":
            if page.window >= last:
                raise self.refuse("already at the end of the page")
            page.window += 1
        elif page.window == 0:
            raise self.refuse("already at the top of the page")
        else:
            page.window = page.window - 1 if action == "scroll_up" else 0
        return self.page_view()

    def back(self) -> dict[str, Any]:
        if not self.on_page:
            raise self.refuse("there is no page to go back from")
        self.history.pop()
        if self.history:
            return self.page_view()  # the previous page, at the window it was left at
        self.on_page = False
        if self.results:
            return self.results_view()
        return {"view": "empty", "actions": self.allowed_actions()}

    def find(self, text: str) -> dict[str, Any]:
        page = self.require_page("find")
        spans = find_spans(page.text, text)
        if not spans:
            raise self.refuse(f"{text!r} does not occur on this page")
        hits = sorted({window_of(page.windows, start) for start, _ in spans})
        # the next window after the current one that has it, wrapping round: repeated finds cycle
        page.window = next((w for w in hits if w > page.window), hits[0])
        return self.page_view(found=text, occurrences=len(spans))

    def quote(self, text: str) -> dict[str, Any]:
        page = self.require_page("quote")
        if len(" ".join(text.split())) < MIN_QUOTE_CHARS:
            raise self.refuse(f"a quote needs at least {MIN_QUOTE_CHARS} characters")
        exact = _exact_occurrence(page.text, text) or _exact_occurrence(page.inner_text, text)
        if exact is None:
            raise self.refuse("the quoted text does not occur on the current page; quote it word for word")
        self.quotes.append(Quote(text=exact, url=page.url, title=page.title))
        return {
            "quote": self.quotes[-1].as_dict(len(self.quotes) - 1),
            "quotes": len(self.quotes),
            "actions": self.allowed_actions(),
        }

    def merge_quotes(self, indices: list[int]) -> dict[str, Any]:
        wanted = sorted(set(indices))
        if len(wanted) < 2:
            raise self.refuse("merge_quotes needs at least two different quote indices")
        bad = [i for i in wanted if not 0 <= i < len(self.quotes)]
        if bad:
            raise self.refuse(f"no quote {bad[0]}; there are {len(self.quotes)} quote(s), numbered from 0")
        chosen = [self.quotes[i] for i in wanted]
        if len({q.url for q in chosen}) > 1:
            raise self.refuse("quotes from different pages can't be merged: a quote keeps one URL")
        merged = Quote(text=" ".join(q.text for q in chosen), url=chosen[0].url, title=chosen[0].title)
        self.quotes = [q for i, q in enumerate(self.quotes) if i not in wanted]
        self.quotes.insert(wanted[0], merged)
        return {
            "merged": merged.as_dict(wanted[0]),
            "quotes": [q.as_dict(i) for i, q in enumerate(self.quotes)],
            "actions": self.allowed_actions(),
        }

    def finish(self) -> dict[str, Any]:
        return {
            "quotes": [q.as_dict(i) for i, q in enumerate(self.quotes)],
            "sources": list(dict.fromkeys(q.url for q in self.quotes)),
            "pages_visited": list(self.visited),
            "actions": self.allowed_actions(),
        }

    async def close(self) -> None:
        await self.driver.close()


def _exact_occurrence(haystack: str, needle: str) -> str | None:
    """The page's own wording of `needle` (case and spacing as on the page), or None."""
    spans = find_spans(haystack, needle)
    if not spans:
        return None
    start, end = spans[0]
    return " ".join(haystack[start:end].split())
