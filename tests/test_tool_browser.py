"""The browser tool drives real Chromium (Playwright) over pages served on 127.0.0.1 by a test
fixture: search a local index of those pages, load a result, scroll, find, quote, finish; refused
actions give reasons; private and loopback addresses are refused unless allowed.

One Chromium for the whole test session (held open by `keep_browser`); each test gets its own
executor, whose `aclose` closes its sessions' browser contexts."""

from __future__ import annotations

import asyncio
import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.runtime.executor import Executor
from toolkit.tools.search import build_index
from toolkit.types import ErrorCode, ToolCall

pytest.importorskip("playwright")
pytest.importorskip("trafilatura")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

FILLER = "\n".join(
    f"<p>Section {i}. The tower's ironwork was inspected again in {1900 + i}; the city archive keeps each report.</p>"
    for i in range(30)
)
PAGES = {
    "tower.html": (
        "<html><head><title>The Eiffel Tower</title><script>document.title = document.title;</script></head><body>"
        "<nav><a href='/'>Home</a> | <a href='/bread.html'>Bread</a></nav><article><h1>The Eiffel Tower</h1>"
        "<p>The Eiffel Tower was completed in 1889 for the World's Fair.</p>"
        "<p>It is 330 metres tall, including its antennas.</p>"
        f"{FILLER}<p>Today the tower welcomes about seven million visitors a year.</p></article></body></html>"
    ),
    "bread.html": (
        "<html><head><title>Baking bread</title></head><body><article><h1>Baking bread</h1>"
        "<p>A baguette needs only flour, water, salt and yeast.</p></article>"
        "<footer>Cookie banner and copyright footer</footer></body></html>"
    ),
    "bridges.html": (
        "<html><head><title>Bridges of Paris</title></head><body><p>The Pont Neuf is the oldest standing bridge "
        "across the Seine in Paris; the Eiffel Tower can be seen from it.</p></body></html>"
    ),
}


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.paths.append(self.path)
        if self.path.startswith("/redirect-to-localhost"):
            port = self.server.server_address[1]
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/bread.html")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    for name, html in PAGES.items():
        (folder / name).write_text(html, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}/"
    (folder / "pixel.html").write_text(  # an allowed page pulling a subresource from a refused host
        f"<html><head><title>Pixel</title></head><body><p>A page with a tracking pixel.</p>"
        f"<img src='http://localhost:{port}/pixel-via-localhost.png'><img src='{base}pixel-via-ip.png'></body></html>"
    )
    index = tmp_path_factory.mktemp("idx") / "site.sqlite"
    build_index(folder, index, base_url=base)
    yield {"folder": folder, "base": base, "index": index, "paths": server.paths}
    server.shutdown()
    server.server_close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium():
    from toolkit.tools.browser import BrowserSettings, keep_browser

    async with keep_browser(BrowserSettings(chromium_path=CHROMIUM)) as host:
        yield host


def _executor(site, **browser_settings) -> Executor:
    settings = {
        "chromium_path": CHROMIUM,
        "allow_hosts": ["127.0.0.1"],
        "search": {"index": str(site["index"])},
        "window_chars": 600,
    }
    settings.update(browser_settings)
    registry = ToolRegistry.default(tool_settings={"browser": settings})
    assert registry.tools["browser"].available, registry.tools["browser"].reason
    return Executor(registry)


async def _call(executor: Executor, name: str, session: str = "s", **arguments):
    return await executor.execute(ToolCall(name=f"browser.{name}", arguments=arguments), session_id=session)


async def test_search_load_scroll_quote_finish(site, chromium):
    ex = _executor(site)
    try:
        obs = await _call(ex, "search", query="Eiffel Tower height")
        assert obs.ok, obs.text
        results = obs.content["results"]
        assert obs.content["view"] == "results" and obs.content["backend"] == "local"
        assert results[0]["title"] == "The Eiffel Tower" and results[0]["index"] == 0
        assert results[0]["url"] == site["base"] + "tower.html"
        assert "load" in obs.content["actions"] and "scroll_down" not in obs.content["actions"]

        page = (await _call(ex, "load", index=0)).content
        assert page["view"] == "page" and page["url"] == site["base"] + "tower.html"
        assert page["title"] == "The Eiffel Tower" and page["status"] == 200
        assert page["window"] == 0 and page["windows"] > 2 and page["at_top"] and not page["at_end"]
        assert "completed in 1889" in page["text"]
        assert "Home | Bread" not in page["text"]  # trafilatura dropped the navigation
        assert "scroll_down" in page["actions"] and "scroll_up" not in page["actions"]

        down = (await _call(ex, "scroll_down")).content
        assert down["window"] == 1 and down["text"] != page["text"] and "scroll_up" in down["actions"]

        quoted = await _call(ex, "quote", text="It is 330   metres tall")  # spacing need not match
        assert quoted.ok, quoted.text
        assert quoted.content["quote"] == {
            "index": 0,
            "text": "It is 330 metres tall",
            "url": site["base"] + "tower.html",
            "title": "The Eiffel Tower",
        }
        found = (await _call(ex, "find", text="seven million visitors")).content
        assert found["at_end"] and "seven million visitors" in found["text"] and found["occurrences"] == 1
        assert (await _call(ex, "quote", text="the tower welcomes about seven million visitors a year")).ok

        done = (await _call(ex, "finish")).content
        assert [q["text"] for q in done["quotes"]] == [
            "It is 330 metres tall",
            "the tower welcomes about seven million visitors a year",
        ]
        assert all(q["url"] == site["base"] + "tower.html" for q in done["quotes"])
        assert done["sources"] == [site["base"] + "tower.html"]
    finally:
        await ex.aclose()


async def test_actions_that_make_no_sense_are_refused_with_reasons(site, chromium):
    ex = _executor(site)
    try:
        cases = [
            ("load", {"index": 0}, "search first"),
            ("scroll_down", {}, "needs an open page"),
            ("back", {}, "no page to go back from"),
            ("quote", {"text": "anything at all"}, "needs an open page"),
            ("merge_quotes", {"indices": [0, 1]}, "no quote 0"),
        ]
        for action, args, reason in cases:
            obs = await _call(ex, action, **args)
            assert not obs.ok and obs.error == ErrorCode.invalid_arguments, (action, obs.text)
            assert reason in obs.message, (action, obs.message)
            assert "Possible actions now: search, open, finish, fetch" in obs.message

        await _call(ex, "search", query="baguette")
        out_of_range = await _call(ex, "load", index=7)
        assert not out_of_range.ok and "no result 7" in out_of_range.message
        page = (await _call(ex, "load", index=0)).content
        assert page["windows"] == 1
        for action, reason in (
            ("scroll_down", "end of the page"),
            ("scroll_up", "top of the page"),
            ("scroll_top", "top of the page"),
        ):
            obs = await _call(ex, action)
            assert not obs.ok and reason in obs.message
        missing = await _call(ex, "quote", text="croissant")
        assert not missing.ok and "does not occur on the current page" in missing.message
        assert not (await _call(ex, "find", text="croissant")).ok
        # quotes from two pages can't be merged
        assert (await _call(ex, "quote", text="flour, water, salt and yeast")).ok
        await _call(ex, "open", url=site["base"] + "bridges.html")
        assert (await _call(ex, "quote", text="oldest standing bridge")).ok
        mixed = await _call(ex, "merge_quotes", indices=[0, 1])
        assert not mixed.ok and "different pages" in mixed.message
    finally:
        await ex.aclose()


async def test_back_find_and_merge(site, chromium):
    ex = _executor(site)
    try:
        results = (await _call(ex, "search", query="eiffel")).content["results"]
        tower = next(r["index"] for r in results if r["url"].endswith("tower.html"))
        await _call(ex, "load", index=tower)
        await _call(ex, "find", text="inspected again in 1925")
        first = await _call(ex, "open", url=site["base"] + "bridges.html")
        assert first.content["title"] == "Bridges of Paris"
        back = (await _call(ex, "back")).content
        assert back["url"].endswith("tower.html") and "1925" in back["text"]  # left at the window it was on
        top = (await _call(ex, "scroll_top")).content
        assert top["window"] == 0
        # "the tower" occurs in several windows: repeated finds move forward, then wrap round
        seen = [
            (await _call(ex, "find", text="ironwork was inspected")).content["window"]
            for _ in range(top["windows"] + 1)
        ]
        assert seen[: top["windows"] - 1] == list(range(1, top["windows"])) and 0 in seen
        await _call(ex, "quote", text="The Eiffel Tower was completed in 1889")
        await _call(ex, "quote", text="for the World's Fair.")
        merged = (await _call(ex, "merge_quotes", indices=[1, 0])).content
        assert merged["merged"]["text"] == "The Eiffel Tower was completed in 1889 for the World's Fair."
        assert len(merged["quotes"]) == 1 and merged["quotes"][0]["url"].endswith("tower.html")
        assert (await _call(ex, "back")).content["view"] == "results"
        assert (await _call(ex, "back")).error == ErrorCode.invalid_arguments
    finally:
        await ex.aclose()


async def test_sessions_have_separate_state(site, chromium):
    ex = _executor(site)
    try:
        await _call(ex, "search", session="a", query="baguette")
        assert (await _call(ex, "load", session="a", index=0)).ok
        assert not (await _call(ex, "load", session="b", index=0)).ok  # b never searched
        assert (await _call(ex, "finish", session="b")).content["quotes"] == []
    finally:
        await ex.aclose()


async def test_loopback_refused_unless_allowed(site, chromium):
    ex = _executor(site, allow_hosts=[])
    try:
        obs = await _call(ex, "open", url=site["base"] + "tower.html")
        assert not obs.ok and obs.error == ErrorCode.invalid_arguments
        assert "127.0.0.1 is a private or loopback address" in obs.message and "allow_hosts" in obs.message
        for url in (
            "http://localhost/",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
        ):
            refused = await _call(ex, "fetch", url=url)
            assert not refused.ok and "private or loopback" in refused.message, url
        assert "only http and https" in (await _call(ex, "open", url="ftp://example.org/x")).message
        assert "file://" in (await _call(ex, "open", url=(site["folder"] / "tower.html").as_uri())).message
    finally:
        await ex.aclose()


async def test_a_redirect_to_a_refused_host_is_blocked(site, chromium):
    ex = _executor(site)  # 127.0.0.1 allowed, localhost not
    try:
        obs = await _call(ex, "open", url=site["base"] + "redirect-to-localhost")
        assert not obs.ok and "was blocked" in obs.message and "localhost" in obs.message
    finally:
        await ex.aclose()


async def test_subresources_from_refused_hosts_never_leave_the_browser(site, chromium):
    ex = _executor(site)  # 127.0.0.1 allowed, localhost not
    try:
        assert (await _call(ex, "open", url=site["base"] + "pixel.html")).ok
        assert "/pixel-via-ip.png" in site["paths"]  # the proxy forwards allowed requests...
        assert "/pixel-via-localhost.png" not in site["paths"]  # ...and refuses the others
    finally:
        await ex.aclose()


async def test_fetch_returns_clean_text(site, chromium):
    ex = _executor(site)
    try:
        obs = await _call(ex, "fetch", url=site["base"] + "bread.html", max_chars=500)
        assert obs.ok, obs.text
        assert obs.content["title"] == "Baking bread" and obs.content["truncated"] is False
        assert "flour, water, salt and yeast" in obs.content["text"]
        short = (await _call(ex, "fetch", url=site["base"] + "tower.html", max_chars=100)).content
        assert short["truncated"] and len(short["text"]) == 100 and short["chars"] > 100
        assert not (await _call(ex, "load", index=0)).ok  # fetch leaves the browsing state alone
    finally:
        await ex.aclose()


async def test_file_results_of_a_local_index_load(site, chromium, tmp_path):
    index = tmp_path / "files.sqlite"
    build_index(site["folder"], index)  # no base URL: file:// URLs
    ex = _executor(site, allow_hosts=[], search={"index": str(index)})
    try:
        results = (await _call(ex, "search", query="Pont Neuf")).content["results"]
        assert results[0]["url"].startswith("file://")
        page = await _call(ex, "load", index=0)
        assert page.ok, page.text
        assert "oldest standing bridge" in page.content["text"]
    finally:
        await ex.aclose()


async def test_an_agent_browses_through_the_react_planner(site, chromium, tmp_path):
    script = [
        {"tool_calls": [{"name": "browser.search", "arguments": {"query": "Eiffel Tower completed"}}]},
        {"tool_calls": [{"name": "browser.load", "arguments": {"index": 0}}]},
        {"tool_calls": [{"name": "browser.quote", "arguments": {"text": "The Eiffel Tower was completed in 1889"}}]},
        {"tool_calls": [{"name": "browser.finish", "arguments": {}}]},
        {"text": "It was completed in 1889."},
    ]
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(script))
    registry = _executor(site).registry
    agent = Agent(model=f"scripted:{tmp_path / 'script.yaml'}", tools=registry, tool_names=["browser"], planner="react")
    try:
        result = await agent.arun("When was the Eiffel Tower completed? Cite a source.")
    finally:
        await agent.aclose()
    assert result.status == "ok", result.error
    observations = [o for step in result.steps for o in step.observations]
    assert [o.name for o in observations] == ["browser.search", "browser.load", "browser.quote", "browser.finish"]
    assert all(o.ok for o in observations), [o.text for o in observations]
    assert observations[-1].content["quotes"][0]["url"] == site["base"] + "tower.html"


async def test_each_task_closes_its_page_and_the_agent_keeps_chromium_until_it_closes(site, chromium, tmp_path):
    script = [
        {"tool_calls": [{"name": "browser.open", "arguments": {"url": site["base"] + "bread.html"}}]},
        {"text": "flour"},
    ]
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(script))
    agent = Agent(model=f"scripted:{tmp_path / 'script.yaml'}", tools=_executor(site).registry, tool_names=["browser"])
    users, pins = chromium.users, chromium.pins
    try:
        for task_id in ("t1", "t2", "t3"):
            result = await agent.arun("What does a baguette need?", task_id)
            assert result.status == "ok" and result.steps[0].observations[0].ok, result.error
            assert chromium.users == users  # the task's context and page are closed...
            assert chromium.pins == pins + 1  # ...but the agent holds the browser for its next task
        assert not agent.executor._sessions
    finally:
        await agent.aclose()
    assert chromium.pins == pins and chromium.alive  # released; the test session's own hold remains


async def test_a_search_with_no_backend_names_the_offline_option(site, chromium):
    ex = _executor(site, search={"online_backends": ["searxng"]})
    try:
        obs = await _call(ex, "search", query="anything")
        assert not obs.ok and "toolkit index build" in obs.message
    finally:
        await ex.aclose()


async def test_another_event_loop_gets_its_own_browser(site, chromium):
    # Playwright objects belong to one loop: a run on another loop (Agent.run's asyncio.run, say)
    # must not be handed the browser this test session holds open on its own loop
    async def elsewhere():
        ex = _executor(site)
        try:
            return await _call(ex, "open", url=site["base"] + "bread.html")
        finally:
            await ex.aclose()

    obs = await asyncio.to_thread(asyncio.run, elsewhere())
    assert obs.ok, obs.text
    assert "flour" in obs.content["text"]
    assert chromium.alive  # the held browser is untouched


async def test_a_session_recovers_when_chromium_goes_away(site, chromium):
    # its own launch options, hence its own Chromium: closing it leaves the shared one alone
    ex = _executor(site, extra_args=["--lang=en-US"])
    try:
        assert (await _call(ex, "open", url=site["base"] + "bread.html")).ok
        session = ex._sessions["s"]["browser"]["session"]
        assert session.driver.host is not chromium
        await session.driver.host.browser.close()  # stands in for a crash
        again = await _call(ex, "open", url=site["base"] + "bridges.html")
        assert again.ok, again.text
        assert (await _call(ex, "back")).content["title"] == "Baking bread"  # the state survived
    finally:
        await ex.aclose()
