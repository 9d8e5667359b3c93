"""Selecting the items a suite scores: seeded samples, offsets, limits and ids."""

import pytest

from evals.sampling import Selection, UnknownIds, parse_ids

ITEMS = [f"q_{i}" for i in range(100)]


def key(item: str) -> str:
    return item


def test_a_seed_draws_the_same_items_in_suite_order():
    first = Selection(sample=10, seed=1).apply(ITEMS, key)
    again = Selection(sample=10, seed=1).apply(ITEMS, key)
    other = Selection(sample=10, seed=2).apply(ITEMS, key)
    assert first == again and len(first) == 10 and len(set(first)) == 10
    assert first == sorted(first, key=ITEMS.index)
    assert first != other
    assert first != ITEMS[:10]  # a sample over the whole list, not its head


def test_offset_then_sample_then_limit():
    assert Selection(offset=95).apply(ITEMS, key) == ITEMS[95:]
    sampled = Selection(offset=50, sample=20, seed=3).apply(ITEMS, key)
    assert all(ITEMS.index(i) >= 50 for i in sampled) and len(sampled) == 20
    assert Selection(offset=50, sample=20, seed=3, limit=5).apply(ITEMS, key) == sampled[:5]
    assert Selection(limit=3).apply(ITEMS, key) == ITEMS[:3]
    assert Selection(sample=500, seed=1).apply(ITEMS, key) == ITEMS  # more than there are: all


def test_ids_select_exactly_and_unknown_ids_are_an_error():
    assert Selection(ids=["q_7", "q_3"]).apply(ITEMS, key) == ["q_3", "q_7"]
    with pytest.raises(UnknownIds, match="q_x"):
        Selection(ids=["q_3", "q_x"]).apply(ITEMS, key)
    assert Selection(ids=["q_3", "q_x"]).apply(ITEMS, key, strict_ids=False) == ["q_3"]


def test_describe_and_parse_ids():
    assert "seed 1" in Selection(sample=30, seed=1).describe()
    assert Selection().describe() == "All items."
    assert parse_ids(" a, b,,c ") == ["a", "b", "c"] and parse_ids("") is None
