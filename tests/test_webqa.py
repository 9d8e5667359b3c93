"""The webqa planner over a local corpus served on 127.0.0.1 (real HTTP server, local search index,
real Chromium through the browser tool): a question whose facts sit on two pages is answered with
two citations pointing at those pages' URLs, with a scripted model and with the embedded one."""

from __future__ import annotations

import functools
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolkit.models.scripted import ScriptedBackend, ScriptFile
from toolkit.planner.webqa_text import (
    Candidate,
    cite,
    extractive_answer,
    pick_by_bm25,
    rank_candidates,
    sentences,
    ungrounded_numbers,
)
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.runtime.policy import needs_approval
from toolkit.trace_view import build_view

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUESTION = "When was the Eiffel Tower completed, and when was the Statue of Liberty dedicated?"
FILLER = "".join(
    f"<p>Visitors in {2000 + i} queued for the lifts; guides told the same stories every day.</p>" for i in range(12)
)
PAGES = {
    "eiffel.html": (
        "<html><head><title>The Eiffel Tower</title></head><body><article><h1>The Eiffel Tower</h1>"
        "<p>The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris.</p>"
        "<p>The Eiffel Tower was completed in March 1889 for the World's Fair.</p>"
        f"<p>It is 330 metres tall.</p>{FILLER}</article></body></html>"
    ),
    "liberty.html": (
        "<html><head><title>The Statue of Liberty</title></head><body><article><h1>The Statue of Liberty</h1>"
        "<p>The Statue of Liberty stands on Liberty Island in New York Harbor.</p>"
        f"<p>Its copper skin turned green over the years.</p>{FILLER}"
        "<p>The Statue of Liberty was dedicated on October 28, 1886.</p></article></body></html>"  # windows below the top
    ),
    "bridges.html": (
        "<html><head><title>Bridges of Paris</title></head><body><article><h1>Bridges of Paris</h1>"
        "<p>The Pont Neuf is the oldest standing bridge across the Seine; the Eiffel Tower can be seen from it.</p>"
        "</article></body></html>"
    ),
    "bread.html": (
        "<html><head><title>Baking bread</title></head><body><p>A baguette needs flour, water, salt and yeast.</p></body></html>"
    ),
}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("playwright")
    pytest.importorskip("trafilatura")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    from toolkit.tools.search import build_index

    folder = tmp_path_factory.mktemp("corpus")
    for name, html in PAGES.items():
        (folder / name).write_text(html, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    index = tmp_path_factory.mktemp("index") / "corpus.sqlite"
    build_index(folder, index, base_url=base)
    yield {"base": base, "index": index}
    server.shutdown()
    server.server_close()


def registry_for(corpus) -> ToolRegistry:
    settings = {
        "chromium_path": CHROMIUM,
        "allow_hosts": ["127.0.0.1"],
        "search": {"index": str(corpus["index"])},
        "window_chars": 500,
    }
    registry = ToolRegistry.default(tool_settings={"browser": settings, "search": {"index": str(corpus["index"])}})
    assert registry.tools["browser"].available, registry.tools["browser"].reason
    return registry


def check_answer(answer: str, base: str) -> dict[int, str]:
    """Two numbered citations in the body, each resolving to a source line with the right URL."""
    body, _, sources = answer.partition("\n\nSources:\n")
    assert sources, answer
    urls = dict((int(n), url) for n, url in re.findall(r"^\[(\d+)\] .*, (\S+)$", sources, re.M))
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    assert cited >= {1, 2} and cited <= set(urls), answer
    assert {urls[n] for n in cited} == {base + "eiffel.html", base + "liberty.html"}, answer
    return urls


@pytest.mark.browser
@pytest.mark.slow
def test_scripted_model_picks_quotes_and_writes_the_answer(corpus):
    script = {
        "mode": "sequence",
        "scripts": [
            {"match": "Page: The Eiffel Tower", "responses": [{"text": "1"}]},
            {"match": "Page: The Statue of Liberty", "responses": [{"text": "1"}]},
            {"match": "Page: Bridges of Paris", "responses": [{"text": "none"}]},
            {
                "match": r"^Quotes:",
                "responses": [
                    {
                        "text": "The Eiffel Tower was completed in 1889. The Statue of Liberty was dedicated in 1886. See also [7]."
                    }
                ],
            },
        ],
    }
    backend = ScriptedBackend(ScriptFile.model_validate(script))
    backend.record_requests = True
    agent = Agent(model=backend, tools=registry_for(corpus), planner="webqa", planner_options={"pages": 4})
    result = agent.run(QUESTION)
    assert result.status == "ok", result.error
    urls = check_answer(result.answer, corpus["base"])
    assert "[7]" not in result.answer  # a citation pointing at no quote is dropped
    # each sentence of the answer cites the page its fact comes from (the script cites nothing itself)
    eiffel, liberty = re.findall(r"[^.]*\.", result.answer.split("\n\nSources:")[0])[:2]
    assert [urls[int(n)] for n in re.findall(r"\[(\d+)\]", eiffel)] == [corpus["base"] + "eiffel.html"]
    assert [urls[int(n)] for n in re.findall(r"\[(\d+)\]", liberty)] == [corpus["base"] + "liberty.html"]
    assert '"The Eiffel Tower was completed in March 1889 for the World\'s Fair."' in result.answer
    names = [c.name for c in result.calls]
    assert names[0] == "browser.search" and names.count("browser.quote") == 2
    assert "browser.scroll_down" in names  # the statue's date is windows below the top of its page
    assert names[-1] == "browser.finish"
    assert all(o.ok for o in result.observations if o.name == "browser.quote")
    choices = [r for r in backend.requests if r.constraint is not None]
    assert choices and all(r.constraint.kind == "choice" and r.constraint.choices[-1] == "none" for r in choices)
    # the model was offered sentences of the bridges page (it mentions the Eiffel Tower) and declined them
    assert any("Page: Bridges of Paris" in r.messages[-1].content for r in choices)
    # the run's trace shows every browser action and model call
    view = build_view(result.task_id, result.trace)
    assert [c.name for c in view.calls] == names and all(c.ok for c in view.calls)
    assert len(view.model_calls) == len(backend.requests)


@pytest.mark.llama
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)  # a few seconds on an idle machine; minutes on a busy 2-core one
def test_embedded_model_answers_with_two_citations(corpus):
    pytest.importorskip("llama_cpp")
    from toolkit.models import BackendError, load_backend
    from toolkit.models.llamacpp.files import default_model_path

    try:
        model = f"llamacpp:{default_model_path()}"
        backend = load_backend(model)
    except (BackendError, ImportError) as exc:
        pytest.skip(f"the embedded model is not available: {exc}")
    # the quotes are chosen by BM25 overlap: a 135M-parameter model writes the answer from them
    options = {"select": "bm25", "answer_max_tokens": 64}
    agent = Agent(model=backend, tools=registry_for(corpus), planner="webqa", planner_options=options)
    result = agent.run(QUESTION)
    assert result.status == "ok", result.error
    check_answer(result.answer, corpus["base"])
    assert result.usage.completion_tokens > 0  # the model wrote an answer
    body = result.answer.split("\n\nSources:")[0]
    assert not ungrounded_numbers(body, [{"text": PAGES["eiffel.html"] + PAGES["liberty.html"]}])  # no invented dates


def test_sentences_ranking_and_citations():
    text = "The tower was completed in 1889. It is really quite tall!\nA heading here\nThe statue was dedicated in 1886 by the president."
    assert sentences(text) == [
        "The tower was completed in 1889.",
        "It is really quite tall!",
        "The statue was dedicated in 1886 by the president.",
    ]
    pool = [
        Candidate("The tower was completed in 1889.", 0, "u0", "t0"),
        Candidate("Bread needs flour and water.", 1, "u1", "t1"),
        Candidate("The statue was dedicated in 1886.", 2, "u2", "t2"),
        Candidate("The tower was completed on time.", 0, "u0", "t0"),
    ]
    ranked = rank_candidates("When was the tower completed and the statue dedicated?", pool)
    assert "Bread" not in " ".join(c.text for c in ranked)
    picked = pick_by_bm25(ranked, per_page=1, max_quotes=4, min_ratio=0.3)
    assert sorted(c.url for c in picked) == ["u0", "u2"]  # one a page
    quotes = [
        {"text": "The tower was completed in 1889.", "url": "u0"},
        {"text": "The statue was dedicated in 1886.", "url": "u2"},
    ]
    assert cite("The tower was completed in 1889. The statue followed in 1886 when it was dedicated.", quotes) == (
        "The tower was completed in 1889 [1]. The statue followed in 1886 when it was dedicated [2]."
    )
    assert (
        cite("Nothing relevant [9].", quotes) == "Nothing relevant. [1][2]"
    )  # dangling citation dropped, quotes cited
    assert ungrounded_numbers("Completed in 1889 [1], dedicated in 1987 [2].", quotes) == ["1987"]
    assert extractive_answer(quotes) == "The tower was completed in 1889 [1]. The statue was dedicated in 1886 [2]."


def test_without_the_browser_the_task_fails_with_the_reason_and_its_reading_needs_no_approval(corpus):
    backend = ScriptedBackend([{"text": "unused"}])
    missing = Agent(model=backend, tools=ToolRegistry(), planner="webqa").run(QUESTION)
    assert missing.status == "error" and "needs the `browser` tool" in missing.error
    # the browser only reads: every action webqa uses is declared read-only, so the approval
    # rule (not read-only -> ask, or deny when nobody can be asked) never stops a webqa run
    registry = registry_for(corpus)
    for action in ("search", "load", "scroll_down", "quote", "merge_quotes", "finish"):
        assert not needs_approval(registry.resolve(f"browser.{action}"))
