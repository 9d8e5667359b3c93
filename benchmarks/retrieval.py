"""Tool retrieval on a 1,000+ tool catalogue: is the right tool in the top k for BFCL's "multiple"
questions, and how long does a query take?

The catalogue is built at run time from public function docs in the evaluation data folder
(BFCL across categories, ToolAlpaca, API-Bank; names deduplicated): `--data-dir` or
$TOOLKIT_EVAL_DATA. Target: recall@5 >= 90% and a median query time under 5 ms.

    python benchmarks/retrieval.py --data-dir ../shared/evaldata
"""

from __future__ import annotations

import argparse
import statistics
import time

from evals.bfcl.data import load_category
from evals.tool_corpus import eval_data_root, public_tool_specs
from toolkit.retrieval import ToolRetriever


def recall_at_k(retriever: ToolRetriever, questions, k: int) -> tuple[int, list[float]]:
    hits, times = 0, []
    for q in questions:
        query = " ".join(m.get("content") or "" for m in q.messages if m.get("role") == "user")
        gold = {name for answer in q.answers or [] for name in answer}
        started = time.perf_counter()
        names = retriever.top_k_names(query, k)
        times.append(time.perf_counter() - started)
        hits += bool(gold & set(names))
    return hits, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="evaluation data folder (default: $TOOLKIT_EVAL_DATA)")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--category", default="multiple")
    args = parser.parse_args()

    root = eval_data_root(args.data_dir)
    specs = public_tool_specs(root)
    started = time.perf_counter()
    retriever = ToolRetriever(specs)
    index_s = time.perf_counter() - started
    questions = load_category(args.category, root / "bfcl")
    hits, times = recall_at_k(retriever, questions, args.k)
    median_ms = statistics.median(times) * 1000
    print(
        f"catalogue: {len(specs)} tools (BFCL + ToolAlpaca + API-Bank, deduplicated); BM25 index built in {index_s:.2f} s"
    )
    print(
        f"recall@{args.k} on BFCL {args.category}: {hits}/{len(questions)} = {hits / len(questions):.1%} (target >= 90%)"
    )
    print(
        f"query time: median {median_ms:.3f} ms, p95 {sorted(times)[int(0.95 * len(times))] * 1000:.3f} ms (target median < 5 ms)"
    )


if __name__ == "__main__":
    main()
