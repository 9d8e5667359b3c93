"""evals/compare_reports.py: which items flipped between two reports, matched by id."""

from __future__ import annotations

import json

from evals.compare_reports import compare, main


def report(verdicts: dict[str, bool], system: str = "toolkit agent") -> dict:
    items = [{"id": i, "category": i.split("_")[0], "system": system, "valid": v} for i, v in verdicts.items()]
    items += [{"id": i, "category": i.split("_")[0], "system": "baseline", "valid": True} for i in verdicts]
    return {"systems": [system, "baseline"], "items": items}


def test_gains_losses_and_items_only_one_report_scored():
    before = report({"multiple_1": False, "multiple_2": True, "parallel_1": True, "parallel_9": True})
    after = report({"multiple_1": True, "multiple_2": True, "parallel_1": False, "irrelevance_3": True})
    result = compare(before, after)
    assert result["categories"]["multiple"] == {"n": 2, "before": 1, "after": 2, "gained": ["multiple_1"], "lost": []}
    assert result["categories"]["parallel"]["lost"] == ["parallel_1"]
    assert result["only_before"] == ["parallel_9"] and result["only_after"] == ["irrelevance_3"]
    assert compare(before, after, system="baseline")["categories"]["multiple"]["gained"] == []


def test_the_command_prints_the_flips_and_refuses_an_unknown_system(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(report({"multiple_1": False})))
    b.write_text(json.dumps(report({"multiple_1": True})))
    assert main([str(a), str(b)]) == 0
    assert "multiple: 0/1 -> 1/1" in capsys.readouterr().out
    assert main([str(a), str(b), "--system", "nope"]) == 2
    assert "no system 'nope'" in capsys.readouterr().err
