"""Verdicts of BFCL's official checker, run inside the venv where `bfcl-eval` is installed.

Not imported by toolkit: `evals/bfcl_official_compare.py` runs it as a script with that venv's
Python (bfcl-eval pins numpy 1.26.4 and needs `soundfile`, so it lives in its own environment):

    /tmp/bfcl-venv/bin/python evals/bfcl/official_verdicts.py CASES.json VERDICTS.json

CASES.json: a list of {"key", "category", "question": BFCL entry, "possible_answer": list | null,
"output": [{name: {param: value}}, ...] or a string (raw text that is not a call list)}.
It goes through the official per-entry evaluators (`_evaluate_single_ast_entry`,
`_evaluate_single_relevance_entry`) with a handler whose `decode_ast` hands the calls over as they
are (our outputs are already structured; a string fails to decode, like text that is no call).
"""

from __future__ import annotations

import json
import sys

MODEL_NAME = "gorilla-openfunctions-v2"  # known to BFCL; keeps dotted function names as they are


class PassThroughHandler:
    """Stands in for a model handler: the outputs were decoded by the engine already."""

    def decode_ast(self, result, language=None, has_tool_call_tag=False):
        if isinstance(result, str):
            raise ValueError(f"not a function call list: {result[:80]!r}")
        return result


def main(cases_path: str, verdicts_path: str) -> None:
    from bfcl_eval.constants.enums import Language, ReturnFormat
    from bfcl_eval.eval_checker import eval_runner

    handler = PassThroughHandler()
    verdicts = {}
    with open(cases_path, encoding="utf-8") as handle:
        cases = json.load(handle)
    for case in cases:
        category = case["category"]
        if "relevance" in category:  # irrelevance and relevance: scored on whether there is a call
            result = eval_runner._evaluate_single_relevance_entry(
                handler, case["key"], case["output"], case["question"], MODEL_NAME, category
            )
        else:
            result = eval_runner._evaluate_single_ast_entry(
                handler,
                case["key"],
                case["output"],
                case["possible_answer"],
                case["question"],
                MODEL_NAME,
                category,
                Language.PYTHON,
                ReturnFormat.PYTHON,
            )
        verdicts[case["key"]] = {"valid": bool(result["valid"]), "error_type": result.get("error_type", "")}
    with open(verdicts_path, "w", encoding="utf-8") as handle:
        json.dump(verdicts, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
