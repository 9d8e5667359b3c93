"""The ParallelQA fixture corpus can answer every one of the 113 questions.

Two checks per question: the search tool, built exactly as `toolkit eval parallelqa` builds it (a
local BM25 index over evals/parallelqa_corpus/, through the registry and the executor), returns
each page the question needs near the top for a plain query about its entity; and the question's
arithmetic on the figures those pages state reproduces the dataset's label under LLMCompiler's
rule. The pages are listed in tests/fixtures/parallelqa_pages.py, the arithmetic in
tests/fixtures/parallelqa_questions.py (runnable on its own); the labels come from the dataset.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from evals.parallelqa import CORPUS, build_registry, load_parallelqa
from tests.fixtures.parallelqa_pages import PAGES, stated_figure
from tests.fixtures.parallelqa_questions import QUESTIONS, work_out
from toolkit.runtime.executor import Executor
from toolkit.types import ToolCall

TOP = 3  # the page must be among the first 3 of the 5 hits an agent gets by default


@pytest.fixture(scope="module")
def labels(evaldata) -> dict[int, str]:
    return {int(item["id"]): str(item["answer"]) for item in load_parallelqa(str(evaldata), None)}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return build_registry(tmp_path_factory.mktemp("parallelqa-index"))


def search(registry, queries: list[str]) -> list[list[str]]:
    """Each query through the search action as an agent calls it: the page files of its hits, best first."""

    async def run() -> list[list[str]]:
        executor = Executor(registry)
        try:
            observations = await executor.execute_many(
                [ToolCall(name="search", arguments={"query": query}) for query in queries]
            )
        finally:
            await executor.aclose()
        for query, observation in zip(queries, observations, strict=True):
            assert observation.ok, f"{query!r}: {observation.message}"
        return [[Path(hit["url"]).name for hit in observation.content] for observation in observations]

    return asyncio.run(run())


def test_every_question_of_the_dataset_is_worked_out(labels):
    assert sorted(QUESTIONS) == sorted(labels) and len(labels) == 113


def test_every_page_states_its_figures_and_every_corpus_page_is_needed():
    for entity, (_, figures) in PAGES.items():
        for attribute in figures:
            assert stated_figure(entity, attribute) > 0
    needed = {page for question in QUESTIONS.values() for page, _ in (PAGES[e] for e in question.entities)}
    assert needed == {path.name for path in CORPUS.glob("*.md")}


@pytest.mark.parametrize("question_id", sorted(QUESTIONS))
def test_the_pages_figures_reproduce_the_label(question_id, labels):
    outcome = work_out(question_id, labels[question_id])
    assert not outcome.missing and not outcome.unused, outcome
    assert outcome.correct, f"question {question_id}: the corpus gives {outcome.answer}, the label is {outcome.label}"


@pytest.mark.parametrize("question_id", sorted(QUESTIONS))
def test_search_finds_each_page_the_question_needs(question_id, registry):
    wanted = [
        (f"{entity} {attribute}", PAGES[entity][0])
        for entity in QUESTIONS[question_id].entities
        for attribute in PAGES[entity][1]
    ]
    hits = search(registry, [query for query, _ in wanted])
    for (query, page), found in zip(wanted, hits, strict=True):
        assert page in found[:TOP], f"{query!r} -> {found}"
