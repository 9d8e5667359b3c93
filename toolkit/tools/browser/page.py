"""Playwright driving Chromium: one browser per process (per event loop), one context and page
per agent session.

The browser is launched on first use and closed when its last session closes, unless something
holds it open with `keep_browser()` (a long-lived server, a test session). Playwright gives every
launch a fresh temporary profile (user-data-dir), so sessions share no cookies with anything
outside the process, and each session's context shares none with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from toolkit.tools.browser.chromium import CHROMIUM_ARGS, LaunchPlan, is_sandbox_failure, launch_plans, warn_unsandboxed
from toolkit.tools.browser.errors import ActionRefused, PageLoadError
from toolkit.tools.browser.proxy import BLOCKED_HEADER, PolicyProxy
from toolkit.tools.browser.settings import BrowserSettings
from toolkit.tools.browser.urls import URLPolicy

MAX_FILE_BYTES = 10 * 1024 * 1024  # of a file:// page
INNER_TEXT_JS = "() => document.body ? document.body.innerText : document.documentElement.innerText || ''"


@dataclass
class LoadedPage:
    url: str  # after redirects
    title: str
    status: int | None
    html: str
    inner_text: str


class BrowserHost:
    """A launched Chromium and the Playwright driver that talks to it, bound to one event loop."""

    def __init__(self, key: tuple, loop: asyncio.AbstractEventLoop):
        self.key = key
        self._loop = weakref.ref(loop)  # a strong one would keep finished loops (and their hosts) alive
        self.playwright: Any = None  # Playwright's objects: its package is imported only when a browser starts
        self.browser: Any = None
        self.users = 0  # open sessions
        self.pins = 0  # keep_browser() holders
        self.plan: LaunchPlan | None = None  # how it was launched (sandboxed? as which user?)

    async def launch(self, settings: BrowserSettings) -> None:
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            raise PageLoadError("playwright is not installed (pip install 'toolkit[browser]')") from None
        try:
            plans = launch_plans(settings)
        except ValueError as exc:
            raise PageLoadError(f"cannot launch Chromium: {exc}") from None
        self.playwright = await async_playwright().start()
        try:
            for i, plan in enumerate(plans):
                try:
                    self.browser = await self.playwright.chromium.launch(
                        executable_path=plan.executable,
                        chromium_sandbox=plan.sandbox,
                        headless=settings.headless,
                        args=[*CHROMIUM_ARGS, *settings.extra_args],
                    )
                    self.plan = plan
                    break
                except Exception as exc:
                    if i + 1 < len(plans) and plan.sandbox and is_sandbox_failure(exc):
                        warn_unsandboxed(settings, exc)
                        continue
                    raise PageLoadError(
                        f"cannot launch Chromium at {settings.chromium_path}: {_first_line(exc)}"
                    ) from None
        except BaseException:
            await self.playwright.stop()
            self.playwright = None
            raise
        finally:
            for plan in plans:
                if plan is not self.plan:
                    plan.cleanup()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop()

    @property
    def alive(self) -> bool:
        loop = self.loop
        return self.browser is not None and self.browser.is_connected() and loop is not None and not loop.is_closed()

    async def close(self) -> None:
        browser, playwright, self.browser, self.playwright = self.browser, self.playwright, None, None
        try:
            if browser is not None:
                with contextlib.suppress(Exception):  # already gone (crashed, or its loop ended)
                    await browser.close()
        finally:
            if playwright is not None:
                await playwright.stop()
            if self.plan is not None:
                self.plan.cleanup()


# Playwright objects belong to the event loop that made them: one browser per (loop, launch options)
_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, BrowserHost]] = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _key(settings: BrowserSettings) -> tuple:
    return (settings.chromium_path, settings.headless, tuple(settings.extra_args))


async def acquire_host(settings: BrowserSettings, *, pin: bool = False) -> BrowserHost:
    loop = asyncio.get_running_loop()
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        hosts = _hosts.setdefault(loop, {})
        key = _key(settings)
        host = hosts.get(key)
        if host is None or not host.alive:
            host = BrowserHost(key, loop)
            await host.launch(settings)
            hosts[key] = host
        if pin:
            host.pins += 1
        else:
            host.users += 1
        return host


async def release_host(host: BrowserHost, *, pin: bool = False) -> None:
    if pin:
        host.pins -= 1
    else:
        host.users -= 1
    if host.users <= 0 and host.pins <= 0 and host.alive:
        hosts = _hosts.get(host.loop, {}) if host.loop is not None else {}
        if hosts.get(host.key) is host:
            del hosts[host.key]
        await host.close()


class HostHold:
    """One agent's hold on the browser its sessions use, so that the browser stays open between
    its tasks: each task's session closes when the task ends, and a batch run one task after
    another would otherwise launch Chromium once per task. The agent's close releases it."""

    def __init__(self) -> None:
        self.host: BrowserHost | None = None

    async def take(self, host: BrowserHost) -> None:
        """Hold `host`, the browser a session just acquired; after a relaunch, let go of the old one."""
        if host is self.host:
            return
        previous, self.host = self.host, host
        host.pins += 1  # as acquire_host(pin=True) counts, without its lock: `host` is up already
        if previous is not None:
            await release_host(previous, pin=True)

    async def close(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            await release_host(host, pin=True)


@asynccontextmanager
async def keep_browser(settings: BrowserSettings | None = None) -> AsyncIterator[BrowserHost]:
    """Hold the shared browser open (launching it now) for the duration of the block."""
    host = await acquire_host(settings or BrowserSettings(), pin=True)
    try:
        yield host
    finally:
        await release_host(host, pin=True)


def file_page_html(url: str) -> str:
    """A file:// URL's content as HTML: HTML files as they are, other text in a <pre>."""
    path = Path(url2pathname(urlsplit(url).path))
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES)
    text = data.decode("utf-8", errors="replace")
    if path.suffix.lower() in (".html", ".htm", ".xhtml"):
        return text
    return (
        f"<html><head><title>{html.escape(path.name)}</title></head><body><pre>{html.escape(text)}</pre></body></html>"
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class PageDriver:
    """One session's browser context and page. Every request the page makes goes through the
    session's policy proxy (loopback included: Chromium otherwise bypasses proxies for it)."""

    def __init__(self, settings: BrowserSettings, policy: URLPolicy, hold: HostHold | None = None):
        self.settings = settings
        self.policy = policy
        self.hold = hold
        self.host: BrowserHost | None = None
        self.context: Any = None  # Playwright's BrowserContext and Page, once started
        self.page: Any = None
        self.proxy = PolicyProxy(policy)
        self._start_lock = asyncio.Lock()  # `fetch` may start the page while another action does

    async def start(self) -> None:
        async with self._start_lock:
            if self.page is not None and (self.page.is_closed() or self.host is None or not self.host.alive):
                await self.close()  # Chromium crashed or was closed under us: start afresh
                self.proxy = PolicyProxy(self.policy)
            if self.page is not None:
                return
            self.host = await acquire_host(self.settings)
            if self.hold is not None:
                await self.hold.take(self.host)
            try:
                proxy_url = await self.proxy.start()
                self.context = await self.host.browser.new_context(
                    service_workers="block",
                    accept_downloads=False,
                    proxy={"server": proxy_url, "bypass": "<-loopback>"},
                )
                self.context.set_default_navigation_timeout(self.settings.navigation_timeout_s * 1000)
                self.page = await self.context.new_page()
            except Exception:
                await self.close()
                raise

    async def load(self, url: str, *, new_page: bool = False) -> LoadedPage:
        """Navigate (the session's page, or a throw-away one) and read the page."""
        await self.start()
        page = await self.context.new_page() if new_page else self.page
        blocked_before = len(self.proxy.blocked)
        try:
            try:
                if url.lower().startswith("file:"):
                    # Chromium may run as another user (chromium.py): toolkit reads the file, with
                    # the user's rights, and hands the page its content
                    await page.set_content(await asyncio.to_thread(file_page_html, url), wait_until="load")
                    response = None
                else:
                    response = await page.goto(url, wait_until="load")
            except OSError as exc:
                raise PageLoadError(f"could not load {url}: {exc.strerror or exc}") from None
            except Exception as exc:
                if len(self.proxy.blocked) > blocked_before:  # e.g. an https redirect to a refused host
                    blocked, reason = self.proxy.blocked[-1]
                    raise ActionRefused(f"{blocked} was blocked: {reason}") from None
                if not new_page and (page.is_closed() or "crash" in str(exc).lower()):
                    self.page = await self.context.new_page()  # the next action gets a working tab
                raise PageLoadError(f"could not load {url}: {_first_line(exc)}") from None
            if response is not None and response.status == 403:
                reason = await response.header_value(BLOCKED_HEADER)
                if reason:  # the proxy refused the page itself (a redirect hop, typically)
                    raise ActionRefused(f"{response.url} was blocked: {reason}")
            html = await page.content()
            inner_text = await page.evaluate(INNER_TEXT_JS)
            return LoadedPage(
                url=url if response is None and url.lower().startswith("file:") else page.url,
                title=await page.title(),
                status=response.status if response else None,
                html=html,
                inner_text=inner_text or "",
            )
        finally:
            if new_page:
                await page.close()

    async def close(self) -> None:
        context, host, self.context, self.page, self.host = self.context, self.host, None, None, None
        try:
            if context is not None:
                with contextlib.suppress(Exception):  # a crashed browser takes its contexts with it
                    await context.close()
        finally:
            await self.proxy.close()
            if host is not None:
                await release_host(host)
