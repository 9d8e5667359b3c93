"""Gold calls built from BFCL's possible answers, and perturbed copies that must fail.

Used by the checker's tests and by `evals/bfcl_official_compare.py` to exercise both verdicts.
A perturbation returns None when it does not apply to a question (e.g. no required parameter).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from evals.bfcl.checker import PYTHON_TYPES, Call, is_irrelevance, is_relevance
from evals.bfcl.data import Question

PERTURBATIONS = ("wrong_value", "wrong_type", "missing_required", "extra_call")


def _gold_value(option: Any) -> Any:
    """Dict answers hold options per key (a list of dicts, per dict): take the first of each."""
    if isinstance(option, dict):
        return {
            key: _gold_value(chosen[0])
            for key, values in option.items()
            if (chosen := [v for v in values if v != ""] if isinstance(values, list) else [values])
        }
    if isinstance(option, list) and option and all(isinstance(item, dict) for item in option):
        return [_gold_value(item) for item in option]
    return copy.deepcopy(option)


def gold_calls(question: Question) -> list[Call]:
    """The first possible value of every parameter; parameters that may be omitted ("" only) are.
    Relevance questions have no possible answers (any call is right): a call of the first function."""
    if is_irrelevance(question.category):
        return []
    if is_relevance(question.category):
        call = _any_call(question)
        return [call] if call else []
    calls = []
    for answer in question.answers or []:
        name, options_by_param = next(iter(answer.items()))
        properties = _function(question, name)["parameters"].get("properties", {})
        arguments = {}
        for param, options in options_by_param.items():
            chosen = [o for o in options if o != ""]
            if chosen and param in properties:  # a few answers name a parameter the function lacks
                arguments[param] = _gold_value(chosen[0])
        calls.append({name: arguments})
    return calls


def _any_call(question: Question) -> Call | None:
    if not question.functions:  # a few live_irrelevance questions offer none
        return None
    function = question.functions[0]
    return {function["name"]: {p: "zq" for p in function["parameters"].get("required", [])}}


def _function(question: Question, name: str) -> dict[str, Any]:
    return next(f for f in question.functions if f["name"] == name)


def _wrong_value(value: Any, options: list[Any]) -> Any | None:
    """A value of the same type that is in no option (None if there is none)."""
    if isinstance(value, bool):
        candidate: Any = not value
    elif isinstance(value, int):
        candidate = 987654321
    elif isinstance(value, float):
        candidate = -98765.4321
    elif isinstance(value, str):
        candidate = "zq wrong value zq"
    elif isinstance(value, list):
        candidate = value + ["zq extra item zq"] if value and isinstance(value[0], str) else value + [987654321]
    elif isinstance(value, dict):
        candidate = {**value, "zq_unexpected_key": 1}
    else:
        return None
    return None if candidate in options else candidate


def _wrong_type(declared: str, options: list[Any]) -> Any:
    """A value whose type is neither the declared one nor that of any possible answer."""
    allowed = {PYTHON_TYPES[declared]} | {type(o) for o in options if o != ""}
    if declared == "float":
        allowed.add(int)  # an int would be accepted for a float
    for candidate in ({"zq": 1}, ["zq"], 987654321, "zq", 1.5, True):
        if type(candidate) not in allowed:
            return candidate
    raise ValueError(f"no wrong type for {declared}")


def _perturb_first_param(
    question: Question, change: Callable[[str, Any, list[Any], str], Any | None]
) -> list[Call] | None:
    calls = gold_calls(question)
    for index, answer in enumerate(question.answers or []):
        name, options_by_param = next(iter(answer.items()))
        properties = _function(question, name)["parameters"]["properties"]
        for param, value in calls[index][name].items():
            new = change(param, value, options_by_param[param], properties[param]["type"])
            if new is not None:
                calls[index][name][param] = new
                return calls
    return None


def perturb(question: Question, kind: str) -> list[Call] | None:
    """A copy of the gold calls with one defect of `kind` (see PERTURBATIONS)."""
    if is_relevance(question.category):  # the one wrong answer: no call
        return [] if kind == PERTURBATIONS[0] else None
    if kind == "extra_call":
        if is_irrelevance(question.category):
            call = _any_call(question)
            return [call] if call else None
        calls = gold_calls(question)
        return calls + [copy.deepcopy(calls[0])]
    if is_irrelevance(question.category):
        return None
    if kind == "wrong_value":
        return _perturb_first_param(question, lambda p, v, options, declared: _wrong_value(v, options))
    if kind == "wrong_type":
        return _perturb_first_param(question, lambda p, v, options, declared: _wrong_type(declared, options))
    if kind == "missing_required":
        calls = gold_calls(question)
        for index, answer in enumerate(question.answers or []):
            name, options_by_param = next(iter(answer.items()))
            required = _function(question, name)["parameters"].get("required", [])
            # a required parameter, or any parameter the answer does not let us omit
            for param in [*required, *(p for p, o in options_by_param.items() if "" not in o)]:
                if param in calls[index][name]:
                    del calls[index][name][param]
                    return calls
        return None
    raise ValueError(f"unknown perturbation {kind!r}; choose one of {', '.join(PERTURBATIONS)}")
