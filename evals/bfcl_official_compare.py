"""Does evals/bfcl/checker.py agree with BFCL's official checker, verdict for verdict?

BFCL's checker comes from the `bfcl-eval` package, which pins numpy 1.26.4 and needs `soundfile`,
so it lives in its own virtual environment. This script installs nothing unless asked:

    python -m venv /tmp/bfcl-venv && /tmp/bfcl-venv/bin/pip install bfcl-eval soundfile
    # (or: python evals/bfcl_official_compare.py --create-venv, which runs exactly that)

    python evals/bfcl_official_compare.py --data-dir ../shared/evaldata \
        [--report bfcl-report.json ...] [--per-category 20] [--venv /tmp/bfcl-venv]

The outputs compared: for the first N questions of each category (`--categories`, the five classic
ones by default; the live ones too),
the gold calls built from the possible answers, one perturbed copy (wrong value / wrong type /
missing required parameter / extra call, in turn), optionally K random small edits of the gold
(`--mutations K`: case, punctuation, int/float/str swaps, dropped or extra parameters, reordered
calls; some stay right, some don't), and every model output stored in the given
`toolkit eval bfcl --out` reports (engine and baseline; an unparseable output counts as text that
is no call). The official side is `evals/bfcl/official_verdicts.py`, run with the venv's Python and
model name `gorilla-openfunctions-v2` (dotted function names are kept as they are).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from evals.bfcl.checker import check  # noqa: E402
from evals.bfcl.data import CATEGORIES, SUPPORTED, Question, find_data_dir, load_category  # noqa: E402
from evals.bfcl.gold import PERTURBATIONS, gold_calls, perturb  # noqa: E402

OFFICIAL_SCRIPT = REPO / "evals" / "bfcl" / "official_verdicts.py"


def create_venv(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "bfcl-eval", "soundfile"], check=True)


def _entry(question: Question) -> dict[str, Any]:
    return {"id": question.id, "question": [question.messages], "function": question.functions}


def _mutate_value(value: Any, rng: random.Random) -> Any:
    """A small change that may or may not keep the value acceptable (that is the point)."""
    if isinstance(value, bool):
        return rng.choice([not value, int(value), str(value).lower()])
    if isinstance(value, int):
        return rng.choice([float(value), str(value), value + 1, -value])
    if isinstance(value, float):
        return rng.choice([int(value), round(value, 1), str(value), value * 2])
    if isinstance(value, str):
        return rng.choice([value.upper(), value.replace(" ", "-"), f" {value}.", value[:-1], value.replace(" ", ", ")])
    if isinstance(value, list):
        return rng.choice([list(reversed(value)), value[:-1], value + value[:1], tuple(value)])
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        return rng.choice(
            [{k: v for k, v in value.items() if k != key}, {**value, key: _mutate_value(value[key], rng)}]
        )
    return value


def mutations(question: Question, count: int, seed: int) -> list[list[dict[str, Any]]]:
    """Random small edits of the gold calls: some still right (case, order, int for float), some not."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        calls = copy.deepcopy(gold_calls(question))
        if not calls:
            continue
        call = rng.choice(calls)
        name = next(iter(call))
        arguments = call[name]
        op = rng.choice(["value", "value", "drop", "extra", "shuffle"])
        if op == "value" and arguments:
            key = rng.choice(sorted(arguments))
            arguments[key] = _mutate_value(arguments[key], rng)
        elif op == "drop" and arguments:
            del arguments[rng.choice(sorted(arguments))]
        elif op == "extra":
            arguments["zq_extra"] = 1
        else:
            rng.shuffle(calls)
        out.append(json.loads(json.dumps(calls)))  # tuples become lists, as they would in JSON
    return out


def build_cases(questions: list[Question], reports: list[Path], mutation_count: int = 0) -> list[dict[str, Any]]:
    """Every output to judge: gold, one perturbation per question, and the reports' model outputs."""
    by_id = {q.id: q for q in questions}
    cases: list[dict[str, Any]] = []

    def add(question: Question, source: str, output: list[dict[str, Any]] | str) -> None:
        cases.append(
            {
                "key": f"{question.id}:{source}:{len(cases)}",
                "source": source,
                "category": question.category,
                "question": _entry(question),
                "possible_answer": question.answers,
                "output": output,
            }
        )

    for index, question in enumerate(questions):
        add(question, "gold", gold_calls(question))
        kinds = [k for k in PERTURBATIONS if perturb(question, k) is not None]
        if kinds:  # none for an irrelevance question that offers no function: no answer is wrong
            kind = kinds[index % len(kinds)]
            add(question, f"perturbed:{kind}", perturb(question, kind))  # type: ignore[arg-type]
        for mutated in mutations(question, mutation_count, seed=index):
            add(question, "mutated", mutated)
    for report in reports:
        data = json.loads(report.read_text(encoding="utf-8"))
        for item in data.get("items", []):
            asked = by_id.get(item["id"])
            if asked is None:
                continue
            # an unparseable output is text the official decoder would also fail on
            output = (item.get("text") or "unparseable output") if item.get("unparseable") else item["calls"]
            add(asked, f"model:{item['system']}", output)
    return cases


def our_verdict(case: dict[str, Any], question: Question) -> bool:
    calls = [] if isinstance(case["output"], str) else case["output"]
    return check(question.category, question.functions, calls, question.answers).valid


def official_verdicts(cases: list[dict[str, Any]], venv: Path) -> dict[str, dict[str, Any]]:
    python = venv / "bin" / "python"
    with tempfile.TemporaryDirectory() as tmp:
        cases_path, verdicts_path = Path(tmp) / "cases.json", Path(tmp) / "verdicts.json"
        cases_path.write_text(
            json.dumps([{k: v for k, v in c.items() if k != "source"} for c in cases]), encoding="utf-8"
        )
        subprocess.run([str(python), str(OFFICIAL_SCRIPT), str(cases_path), str(verdicts_path)], check=True, cwd=tmp)
        return json.loads(verdicts_path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="folder holding bfcl/ (default: $TOOLKIT_EVAL_DATA, else bfcl-eval's data)")
    parser.add_argument("--venv", default="/tmp/bfcl-venv", help="virtual environment where bfcl-eval is installed")
    parser.add_argument(
        "--create-venv", action="store_true", help="create the venv and pip install bfcl-eval soundfile"
    )
    parser.add_argument(
        "--report", action="append", default=[], help="a `toolkit eval bfcl --out` JSON report (repeatable)"
    )
    parser.add_argument("--per-category", type=int, default=20, help="questions per category")
    parser.add_argument(
        "--categories",
        default=",".join(CATEGORIES),
        help=f"comma-separated categories (default: the five classic ones; supported: {', '.join(SUPPORTED)})",
    )
    parser.add_argument("--mutations", type=int, default=0, help="also K random small edits of each gold answer")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    venv = Path(args.venv)
    if args.create_venv and not (venv / "bin" / "python").exists():
        create_venv(venv)
    if not (venv / "bin" / "python").exists():
        print(
            f"no venv at {venv}; create it with:\n  python -m venv {venv} && {venv}/bin/pip install bfcl-eval soundfile\n"
            "or run this script with --create-venv",
            file=sys.stderr,
        )
        return 2

    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    unknown = [c for c in categories if c not in SUPPORTED]
    if unknown:
        print(f"unsupported categories: {', '.join(unknown)}; choose from {', '.join(SUPPORTED)}", file=sys.stderr)
        return 2
    print(f"data: {find_data_dir(args.data_dir)}", file=sys.stderr)
    questions = [q for c in categories for q in load_category(c, args.data_dir, args.per_category)]
    cases = build_cases(questions, [Path(r) for r in args.report], args.mutations)
    by_id = {q.id: q for q in questions}
    official = official_verdicts(cases, venv)

    agree: Counter[str] = Counter()
    total: Counter[str] = Counter()
    verdicts: Counter[tuple[str, bool]] = Counter()
    disagreements = []
    for case in cases:
        source = case["source"].split(":")[0]
        ours = our_verdict(case, by_id[case["question"]["id"]])
        theirs = official[case["key"]]["valid"]
        total[source] += 1
        verdicts[(source, theirs)] += 1
        if ours == theirs:
            agree[source] += 1
        else:
            disagreements.append(
                {
                    "key": case["key"],
                    "ours": ours,
                    "official": theirs,
                    "official_error": official[case["key"]]["error_type"],
                }
            )
    figures: dict[str, Any] = {
        "questions": len(questions),
        "outputs": len(cases),
        "agree": sum(agree.values()),
        "agreement": sum(agree.values()) / len(cases),
        "by_source": {
            s: {
                "outputs": total[s],
                "agree": agree[s],
                "official_valid": verdicts[(s, True)],
                "official_invalid": verdicts[(s, False)],
            }
            for s in total
        },
        "disagreements": disagreements,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"BFCL checker agreement on {len(questions)} questions: {figures['agree']}/{len(cases)} outputs "
            f"({100 * figures['agreement']:.1f}%)"
        )
        for source, row in figures["by_source"].items():
            print(
                f"  {source:10s} {row['agree']}/{row['outputs']} agree; official verdicts: "
                f"{row['official_valid']} valid, {row['official_invalid']} invalid"
            )
        for d in disagreements:
            print(f"  DISAGREE {d['key']}: ours={d['ours']} official={d['official']} ({d['official_error']})")
    return 0 if not disagreements else 1


if __name__ == "__main__":
    sys.exit(main())
