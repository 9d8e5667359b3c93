"""Tool retrieval: the top-k actions for a query, by BM25 over what a model is told about each
action (its name split into words, description, parameter names and descriptions, and the tasks
of its examples).

A registry can hold more tools than fit a prompt (and a tiny model chooses worse the more it is
offered): the agent and planners offer only the top-k that retrieval ranks for the task.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from toolkit.types import ToolSpec

# common English words that say nothing about which tool fits
STOPWORDS = frozenset(
    """a an the and or of to in on for with by from at as is are was were be been being this that these those
    it its i me my we our you your he she they them their what which who whom how when where why can could
    would should will shall may might must do does did done have has had get gets give please want need
    some any all each every other such no not only own same so than too very just also there here into
    about over under then if else up down out off again further once more most""".split()
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[A-Za-z]+|\d+")


def _stem(word: str) -> str:
    """A light suffix stripper (plural and common verb endings): enough to match `prices` with
    `price` or `calculating` with `calculate` without a stemming library."""
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + keep
    return word


def tokenize(text: str) -> list[str]:
    """Words of a text, with identifiers split (`get_stockPrice.v2` -> get, stock, price, v, 2)."""
    words = _WORD.findall(_CAMEL.sub(" ", text))
    return [_stem(w) for w in (w.lower() for w in words) if w not in STOPWORDS and len(w) > 1]


def spec_text(spec: ToolSpec) -> str:
    """What retrieval indexes for an action. The name counts twice: it is the densest clue."""
    parts = [spec.name, spec.name, spec.description]
    properties = spec.parameters.get("properties") or {}
    if isinstance(properties, dict):
        for name, schema in properties.items():
            parts.append(name)
            if isinstance(schema, dict) and isinstance(schema.get("description"), str):
                parts.append(schema["description"])
    for example in spec.examples:
        if isinstance(example, dict) and isinstance(example.get("task"), str):
            parts.append(example["task"])
    return " ".join(parts)


class ToolRetriever:
    """BM25 over action specs. `ToolRetriever(registry_or_specs).top_k(query, k)` -> ToolSpecs.

    The index is built once, in the constructor; a query scores every action (a vector operation
    over the index, well under a millisecond for a few thousand actions).
    """

    def __init__(self, tools: Any, *, k1: float = 1.2, b: float = 0.75):
        import bm25s

        self.specs: list[ToolSpec] = _as_specs(tools)
        corpus = [tokenize(spec_text(s)) or ["_"] for s in self.specs]
        self._index = bm25s.BM25(k1=k1, b=b)
        if self.specs:
            self._index.index(corpus, show_progress=False)
        self._known = {w for doc in corpus for w in doc}

    def __len__(self) -> int:
        return len(self.specs)

    def scores(self, query: str) -> np.ndarray:
        """One BM25 score per action, in `self.specs` order."""
        words = [w for w in tokenize(query) if w in self._known]
        if not words or not self.specs:
            return np.zeros(len(self.specs))
        return np.asarray(self._index.get_scores(words))

    def top_k(self, query: str, k: int = 5) -> list[ToolSpec]:
        """The k best actions for the query, best first. Ties keep registry order, so a query that
        matches nothing returns the first k actions rather than nothing."""
        if k <= 0 or not self.specs:
            return []
        scores = self.scores(query)
        k = min(k, len(self.specs))
        if k < len(self.specs):
            candidates = np.argpartition(-scores, k - 1)[:k]
        else:
            candidates = np.arange(len(self.specs))
        order = sorted(candidates.tolist(), key=lambda i: (-scores[i], i))
        return [self.specs[i] for i in order]

    def top_k_names(self, query: str, k: int = 5) -> list[str]:
        return [s.name for s in self.top_k(query, k)]


def _as_specs(tools: Any) -> list[ToolSpec]:
    if hasattr(tools, "specs") and callable(tools.specs):  # a ToolRegistry
        return list(tools.specs())
    items: Iterable[Any] = tools
    return [t if isinstance(t, ToolSpec) else ToolSpec.model_validate(t) for t in items]


__all__ = ["ToolRetriever", "tokenize", "spec_text"]
