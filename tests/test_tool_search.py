"""The search tool: a real local FTS5 index over a temp folder, the backend choice, the error when
no backend answers, and the SearxNG and Wikipedia code paths against real HTTP servers on
127.0.0.1 that answer with those APIs' shapes. No test touches the network beyond 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.registry import ToolRegistry, builtin_manifest_dir
from toolkit.runtime.executor import Executor
from toolkit.tools.search import LocalIndex, build_index, parse_settings, run_search
from toolkit.tools.search.results import BackendNotConfigured, SearchError
from toolkit.tools.search.settings import SearchSettings
from toolkit.types import ErrorCode, ToolCall

DOCS = {
    "tower.html": "<html><head><title>The Eiffel Tower</title><style>.x{}</style></head><body>"
    "<nav>menu</nav><h1>Eiffel Tower</h1><p>The Eiffel Tower in Paris was completed in 1889 for the World's Fair."
    "</p><script>var secret = 'zanzibar';</script></body></html>",
    "guides/paris.md": "# Visiting Paris\n\nParis has many museums. The tower is busy in summer; the Louvre is closed on Tuesdays.\n",
    "notes/bridges.txt": "Bridges of Paris\n\nThe Pont Neuf is the oldest standing bridge across the Seine.\n",
    "notes/cooking.txt": "Bread\n\nA baguette needs flour, water, salt and yeast.\n",
    ".hidden/secret.txt": "tower tower tower tower",
    "image.png": "not a document",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for name, text in DOCS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "docs.sqlite"
    stats = build_index(corpus, out, base_url="http://127.0.0.1:8000/")
    assert stats.documents == 4  # html, md, two txt; hidden folder and png skipped
    return out


def test_local_index_ranks_the_best_match_first(index):
    results = LocalIndex(index).search("eiffel tower", k=5)
    assert [r.rank for r in results] == list(range(1, len(results) + 1))
    assert results[0].title == "The Eiffel Tower"
    assert results[0].url == "http://127.0.0.1:8000/tower.html"
    assert "1889" in results[0].snippet
    # the guide mentions "tower" once in its body: found, but ranked below the page about it
    assert [r.url for r in results][1] == "http://127.0.0.1:8000/guides/paris.md"
    assert all("cooking" not in r.url for r in results)


def test_local_index_drops_scripts_and_matches_stems(index):
    db = LocalIndex(index)
    assert db.search("zanzibar") == []  # text inside <script> is not indexed
    assert db.search("bridge")[0].title == "Bridges of Paris"  # porter stemming: bridge ~ bridges
    assert db.search("   ") == []
    # FTS5 syntax in a query is read as plain words, never as a syntax error
    assert db.search('NEAR( "baguette* OR')[0].title == "Bread"


def test_file_urls_without_base_url(corpus, tmp_path):
    build_index(corpus, tmp_path / "f.sqlite")
    first = LocalIndex(tmp_path / "f.sqlite").search("baguette")[0]
    assert first.url == (corpus / "notes" / "cooking.txt").resolve().as_uri()


def test_missing_and_foreign_index_files_name_the_build_command(tmp_path):
    with pytest.raises(BackendNotConfigured, match="toolkit index build"):
        LocalIndex(tmp_path / "nope.sqlite")
    (tmp_path / "junk.sqlite").write_text("not sqlite")
    with pytest.raises(BackendNotConfigured, match="not a search index"):
        LocalIndex(tmp_path / "junk.sqlite")


def test_search_action_through_registry_and_executor(index):
    registry = ToolRegistry.default(tool_settings={"search": {"index": str(index)}})
    assert registry.tools["search"].available
    obs = _run(Executor(registry), ToolCall(name="search", arguments={"query": "Louvre museums", "k": 2}))
    assert obs.ok, obs.text
    assert obs.content[0] == {
        "title": "Visiting Paris",
        "url": "http://127.0.0.1:8000/guides/paris.md",
        "snippet": obs.content[0]["snippet"],
        "rank": 1,
    }
    assert len(obs.content) <= 2
    bad = _run(Executor(registry), ToolCall(name="search", arguments={"query": "x", "k": 0}))
    assert bad.error == ErrorCode.invalid_arguments


def test_no_backend_answers_error_names_the_offline_option():
    # the online backends point at a closed port on 127.0.0.1: they fail without touching the network
    settings = {"online_backends": ["searxng", "wikipedia"], "wikipedia_url": "http://127.0.0.1:9", "timeout_s": 2}
    registry = ToolRegistry.default(tool_settings={"search": settings})
    obs = _run(Executor(registry, max_retries=0), ToolCall(name="search", arguments={"query": "anything"}))
    assert not obs.ok and obs.error == ErrorCode.tool_error
    assert "no online search backend answered" in obs.message
    assert "searxng: no searxng_url is set" in obs.message
    assert "wikipedia (http://127.0.0.1:9)" in obs.message
    assert "toolkit index build FOLDER --out INDEX" in obs.message


def test_a_configured_index_wins_over_online_backends_and_a_broken_one_is_an_error(index, tmp_path):
    name, results = _arun(
        run_search("tower", 3, parse_settings({"index": str(index), "wikipedia_url": "http://127.0.0.1:9"}))
    )
    assert name == "local" and results
    with pytest.raises(SearchError, match="does not exist"):
        _arun(run_search("tower", 3, parse_settings({"index": str(tmp_path / "gone.sqlite")})))


def test_bad_settings_are_clear_errors():
    with pytest.raises(SearchError, match="backend"):
        parse_settings({"backend": "bing"})
    with pytest.raises(SearchError, match="indx"):
        parse_settings({"indx": "/x"})


def test_manifest_settings_match_the_code_defaults():
    manifest = yaml.safe_load((builtin_manifest_dir() / "search.yaml").read_text())
    assert parse_settings(manifest["settings"]) == SearchSettings()


# ---- SearxNG and Wikipedia against local servers speaking their APIs ---------------------------


class _APIHandler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).requests.append(self.path)
        if url.path == "/search" and q.get("format") == "json":  # SearxNG
            body = {
                "query": q["q"],
                "number_of_results": 3,
                "results": [
                    {"url": "https://a.example/1", "title": "First", "content": "about " + q["q"], "engine": "x"},
                    {"url": "https://a.example/1", "title": "First (dup)", "content": "", "engine": "y"},
                    {"url": "https://b.example/2", "title": "Second", "content": "more", "engine": "x"},
                ],
            }
        elif url.path == "/nojson/search":  # SearxNG without the json format enabled
            self.send_response(403)
            self.end_headers()
            return
        elif url.path == "/w/api.php" and q.get("list") == "search":  # MediaWiki
            body = {
                "batchcomplete": True,
                "query": {
                    "searchinfo": {"totalhits": 2},
                    "search": [
                        {
                            "ns": 0,
                            "title": "Gustave Eiffel",
                            "pageid": 1,
                            "snippet": 'French <span class="searchmatch">engineer</span> &amp; builder',
                        },
                        {"ns": 0, "title": "Eiffel Tower", "pageid": 2, "snippet": "Lattice tower"},
                    ][: int(q.get("srlimit", 10))],
                },
            }
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def api_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _APIHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_searxng_backend_parses_results_and_drops_duplicates(api_server):
    settings = parse_settings({"backend": "searxng", "searxng_url": api_server + "/"})
    name, results = _arun(run_search("eiffel", 5, settings))
    assert name == "searxng"
    assert [(r.rank, r.title, r.url) for r in results] == [
        (1, "First", "https://a.example/1"),
        (2, "Second", "https://b.example/2"),
    ]
    assert results[0].snippet == "about eiffel"


def test_wikipedia_backend_builds_page_urls_and_cleans_snippets(api_server):
    settings = parse_settings({"backend": "wikipedia", "wikipedia_url": api_server})
    name, results = _arun(run_search("eiffel", 1, settings))
    assert name == "wikipedia"
    assert len(results) == 1
    assert results[0].model_dump() == {
        "title": "Gustave Eiffel",
        "url": f"{api_server}/wiki/Gustave_Eiffel",
        "snippet": "French engineer & builder",
        "rank": 1,
    }


def test_auto_falls_through_to_the_next_online_backend(api_server):
    # SearxNG answers 403 (json format disabled) at this URL; Wikipedia answers next
    settings = parse_settings(
        {
            "online_backends": ["searxng", "wikipedia"],
            "searxng_url": api_server + "/nojson",
            "wikipedia_url": api_server,
        }
    )
    name, results = _arun(run_search("eiffel", 2, settings))
    assert name == "wikipedia" and len(results) == 2


def test_searxng_403_says_how_to_fix_it(api_server):
    settings = parse_settings({"backend": "searxng", "searxng_url": api_server + "/nojson"})
    with pytest.raises(SearchError, match="enable the json format"):
        _arun(run_search("eiffel", 2, settings))


# ---- CLI ---------------------------------------------------------------------------------------


def test_cli_index_build_and_search(corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.sqlite"
    result = runner.invoke(
        app, ["index", "build", str(corpus), "--out", str(out), "--base-url", "http://127.0.0.1:8000"]
    )
    assert result.exit_code == 0, result.output
    assert "indexed 4 document(s)" in result.output
    result = runner.invoke(app, ["index", "search", str(out), "pont neuf", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["url"] == "http://127.0.0.1:8000/notes/bridges.txt"
    result = runner.invoke(app, ["index", "build", str(tmp_path / "missing"), "--out", str(out)])
    assert result.exit_code == 2 and "not a folder" in result.output


def _arun(coro):
    import asyncio

    return asyncio.run(coro)


def _run(executor: Executor, call: ToolCall):
    return _arun(executor.execute(call, session_id="t"))
