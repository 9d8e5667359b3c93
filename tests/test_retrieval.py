"""Tool retrieval: BM25 over tool docs ranks the right tool first; recall on BFCL "multiple"
against the 1,000+ tool public catalogue; the agent offers only the top-k of a large registry."""

from __future__ import annotations

from toolkit.retrieval import ToolRetriever, tokenize
from toolkit.types import ToolSpec


def _spec(name: str, description: str, params: dict | None = None, examples: list | None = None) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": params or {}},
        examples=examples or [],
    )


SPECS = [
    _spec("math.calculate", "Evaluate an arithmetic expression exactly.", {"expression": {"type": "string"}}),
    _spec("search.web", "Search the web and return result snippets.", {"query": {"type": "string"}}),
    _spec("weather.forecast", "Weather forecast for a city.", {"city": {"type": "string", "description": "City name"}}),
    _spec(
        "image.generate",
        "Draw a picture from a prompt.",
        examples=[{"task": "paint a sunset over the sea", "arguments": {}}],
    ),
]


def test_tokenize_splits_identifiers_and_drops_stopwords():
    assert tokenize("get_stockPrice for the IBMQuote") == ["stock", "price", "ibm", "quote"]


def test_top_k_ranks_by_name_description_params_and_examples():
    retriever = ToolRetriever(SPECS)
    assert retriever.top_k_names("what is the forecast in Paris", 1) == ["weather.forecast"]
    assert retriever.top_k_names("calculate 2**10", 1) == ["math.calculate"]
    assert retriever.top_k_names("paint me a sunset", 1) == ["image.generate"]  # from an example's task
    assert retriever.top_k_names("which city has the best weather", 2)[0] == "weather.forecast"  # parameter description


def test_top_k_edge_cases():
    retriever = ToolRetriever(SPECS)
    assert retriever.top_k("anything", 0) == []
    assert len(retriever.top_k("zzzz unknown words", 3)) == 3  # no match: the first k, not nothing
    assert len(retriever.top_k("weather", 99)) == len(SPECS)
    assert ToolRetriever([]).top_k("weather", 3) == []


def test_retriever_accepts_a_registry():
    from toolkit.registry import ToolRegistry

    def lookup_stock_price(ticker: str) -> float:
        """Latest stock price for a ticker symbol."""
        return 1.0

    def translate_text(text: str, target: str) -> str:
        """Translate text into a target language."""
        return text

    registry = ToolRegistry()
    registry.add_function(lookup_stock_price)
    registry.add_function(translate_text)
    assert ToolRetriever(registry).top_k_names("price of AAPL stock", 1) == ["lookup_stock_price"]


def test_recall_at_5_on_bfcl_multiple_against_the_public_catalogue(evaldata):
    from evals.bfcl.data import load_category
    from evals.tool_corpus import public_tool_specs

    specs = public_tool_specs(evaldata)
    assert len(specs) >= 1000
    assert len({s.name for s in specs}) == len(specs)
    retriever = ToolRetriever(specs)
    questions = load_category("multiple", evaldata / "bfcl")[:100]
    hits = 0
    for q in questions:
        query = " ".join(m["content"] for m in q.messages if m["role"] == "user")
        gold = {name for answer in q.answers for name in answer}
        hits += bool(gold & set(retriever.top_k_names(query, 5)))
    assert hits / len(questions) >= 0.9


def _many_tools(n: int):
    topics = ["weather", "stock", "flight", "hotel", "recipe", "movie", "music", "news", "translate", "currency"]
    fns = []
    for i in range(n):
        topic = topics[i % len(topics)]

        def fn(query: str) -> str:
            return query

        fn.__name__ = f"{topic}_tool_{i}"
        fn.__doc__ = f"Look up {topic} information, variant {i}."
        fns.append(fn)
    return fns


def test_agent_offers_only_top_k_of_a_large_registry():
    from toolkit.models.scripted import ScriptedBackend
    from toolkit.registry import ToolRegistry
    from toolkit.runtime.agent import Agent

    registry = ToolRegistry()
    for fn in _many_tools(40):
        registry.add_function(fn)
    backend = ScriptedBackend([{"text": "done"}])
    agent = Agent(model=backend, tools=registry, retrieve_k=5, retrieve_threshold=20)
    offered = agent.tool_specs("what is the weather tomorrow")
    assert len(offered) == 5 and all(s.name.startswith("weather") for s in offered[:4])  # 4 weather tools of 40
    small = Agent(model=backend, tools=registry, retrieve_k=5, retrieve_threshold=100)
    assert len(small.tool_specs("what is the weather tomorrow")) == 40  # under the threshold: all
    off = Agent(model=backend, tools=registry, retrieve_k=None, retrieve_threshold=0)
    assert len(off.tool_specs("weather")) == 40
