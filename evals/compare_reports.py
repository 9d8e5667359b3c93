"""Which items changed between two reports of the same suite (`toolkit eval ... --out R.json`).

    python evals/compare_reports.py before.json after.json [--system "toolkit agent"]

For one system (default: each report's first column, the agent), the items both reports scored,
matched by id: how many were right in each, and the ids that went from wrong to right and from
right to wrong, per category when the suite has categories (BFCL). Items only one report scored
are counted apart. A change judged this way should be judged on a sample it was not developed on
(evals/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

VERDICT_KEYS = ("valid", "correct", "full_sequence")  # BFCL, GSM8K / ParallelQA, NESTFUL


def _verdict(item: dict[str, Any]) -> bool:
    for key in VERDICT_KEYS:
        if key in item:
            return bool(item[key])
    raise ValueError(f"item {item.get('id')} has no verdict ({', '.join(VERDICT_KEYS)})")


def items_of(report: dict[str, Any], system: str | None) -> tuple[str, dict[str, dict[str, Any]]]:
    system = system or report["systems"][0]
    if system not in report["systems"]:
        raise ValueError(f"no system {system!r} in the report; it has: {', '.join(report['systems'])}")
    return system, {str(i["id"]): i for i in report["items"] if i["system"] == system}


def compare(before: dict[str, Any], after: dict[str, Any], system: str | None = None) -> dict[str, Any]:
    label, old = items_of(before, system)
    _, new = items_of(after, system or label)
    shared = [i for i in old if i in new]
    by_category: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"n": 0, "before": 0, "after": 0, "gained": [], "lost": []}
    )
    for item_id in shared:
        row = by_category[str(old[item_id].get("category", "all"))]
        was, now = _verdict(old[item_id]), _verdict(new[item_id])
        row["n"] += 1
        row["before"] += was
        row["after"] += now
        if now and not was:
            row["gained"].append(item_id)
        elif was and not now:
            row["lost"].append(item_id)
    return {
        "system": label,
        "categories": dict(by_category),
        "only_before": sorted(set(old) - set(new)),
        "only_after": sorted(set(new) - set(old)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--system", help="the column to compare (default: the first, the agent)")
    args = parser.parse_args(argv)
    try:
        reports = [json.loads(Path(p).read_text(encoding="utf-8")) for p in (args.before, args.after)]
        result = compare(reports[0], reports[1], system=args.system)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['system']}: right before -> after, on the items both reports scored")
    for category, row in result["categories"].items():
        print(f"  {category}: {row['before']}/{row['n']} -> {row['after']}/{row['n']}")
        if row["gained"]:
            print(f"    gained: {', '.join(row['gained'])}")
        if row["lost"]:
            print(f"    lost:   {', '.join(row['lost'])}")
    for key in ("only_before", "only_after"):
        if result[key]:
            print(f"  {key.replace('_', ' ')}: {len(result[key])} item(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
