"""The `browser` tool: WebCPM's interactive web-search actions over Playwright + Chromium
(tool_manifests/browser.yaml documents each action's result).

Modules: session.py (the per-agent state machine and the actions' results), page.py (Playwright:
a shared browser, a context and page per session), chromium.py and as_user.py (how Chromium is
launched: flags, its sandbox, the user it runs as), proxy.py and urls.py (which addresses may be
reached), text.py (page text and windows), settings.py.

Each function takes the ToolContext (`ctx`) that the python binding passes: the session lives in
`ctx.state` (one per agent session and tool) and is closed through `ctx.state["__close__"]` when
the task ends; the agent's hold on Chromium (`ctx.shared_state`) keeps the browser itself open
until the agent closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from toolkit.bindings import ToolContext, ToolInputError
from toolkit.tools.browser.errors import ActionRefused, PageLoadError
from toolkit.tools.browser.page import HostHold, keep_browser
from toolkit.tools.browser.session import BrowserSession
from toolkit.tools.browser.settings import BrowserSettings, parse_settings
from toolkit.tools.browser.text import readable_text

__all__ = [
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
    "ActionRefused",
    "PageLoadError",
    "BrowserSession",
    "BrowserSettings",
    "keep_browser",
]


def session_of(ctx: ToolContext | None) -> BrowserSession:
    """The session kept in this (agent session, tool)'s state, created on first use."""
    if ctx is None:
        raise RuntimeError("the browser keeps state per agent session: call it through the executor (it passes ctx)")
    session = ctx.state.get("session")
    if session is None:
        hold = ctx.shared_state.get("hold")
        if hold is None:
            hold = ctx.shared_state["hold"] = HostHold()
            ctx.shared_state["__close__"] = hold.close
        session = BrowserSession(parse_settings(ctx.settings), hold=hold)
        ctx.state["session"] = session
        ctx.state["__close__"] = session.close  # when the task ends
    return session


@asynccontextmanager
async def _acting(ctx: ToolContext | None) -> AsyncIterator[BrowserSession]:
    session = session_of(ctx)
    async with session.lock:  # parallel calls in one session would interleave page loads
        yield session


def _search_settings(browser: BrowserSettings) -> dict[str, Any]:
    """The search tool's settings from the user's config, then the browser's own `search` setting."""
    from toolkit.config import load_config

    return {**load_config().tools.get("search", {}), **browser.search}


async def search(query: str, ctx: ToolContext | None = None) -> dict[str, Any]:
    from toolkit.tools.search import parse_settings as parse_search_settings
    from toolkit.tools.search import run_search

    if not query.strip():
        raise ToolInputError("query is empty; give the words to search for")
    async with _acting(ctx) as session:
        settings = parse_search_settings(_search_settings(session.settings))
        backend, results = await run_search(query, session.settings.max_results, settings)
        return session.set_results(query, backend, [r.model_dump() for r in results])


async def load(index: int, ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return await session.load(index)


async def open(url: str, ctx: ToolContext | None = None) -> dict[str, Any]:  # noqa: A001 - the action's name
    async with _acting(ctx) as session:
        return await session.open(url)


async def scroll_down(ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.scroll("scroll_down")


async def scroll_up(ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.scroll("scroll_up")


async def scroll_top(ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.scroll("scroll_top")


async def back(ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.back()


async def find(text: str, ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.find(text)


async def quote(text: str, ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.quote(text)


async def merge_quotes(indices: list[int], ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.merge_quotes(indices)


async def finish(ctx: ToolContext | None = None) -> dict[str, Any]:
    async with _acting(ctx) as session:
        return session.finish()


async def fetch(url: str, max_chars: int = 8000, ctx: ToolContext | None = None) -> dict[str, Any]:
    """A page's readable text in one piece, in a throw-away tab: the session's state is untouched."""
    session = session_of(ctx)
    url = await session.driver.policy.require(url)
    loaded = await session.driver.load(url, new_page=True)
    text, extractor = readable_text(loaded.html, loaded.inner_text, loaded.url)
    return {
        "url": loaded.url,
        "title": loaded.title,
        "status": loaded.status,
        "extractor": extractor,
        "text": text[:max_chars],
        "chars": len(text),
        "truncated": len(text) > max_chars,
    }
