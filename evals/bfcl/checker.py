"""BFCL's AST checker, re-implemented: is a list of calls right for one question?

Follows the rules of the Berkeley Function Calling Leaderboard's official checker
(`bfcl_eval/eval_checker/ast_eval/ast_checker.py`, Python language only), including its quirks,
because a score is only comparable if it is computed the same way:

- a call is `{function_name: {param: value}}`; names are compared exactly (dotted names kept);
- a value's type must be exactly the declared one (`bool` is not an `int`), except that an int is
  accepted where a float is declared (top level only, as in BFCL); arrays get one level of item
  type checks;
- a possible answer whose type differs from the declared one is a "variable": the value then only
  has to equal one of the possible answers;
- strings are compared after BFCL's normalisation (drop spaces and `,./-_*^`, lowercase,
  `'` -> `"`), also inside lists and dicts;
- `""` among a parameter's possible answers marks it optional;
- `parallel*` categories match calls to answers in any order (greedily, answer by answer);
  `multiple` expects one call; others expect exactly one call of the one function;
- `irrelevance` (and `live_irrelevance`) is right when there is no call at all; `live_relevance`
  when there is at least one (any call: BFCL has no possible answers for it).

`evals/bfcl_official_compare.py` checks this module verdict for verdict against the official one.
"""

from __future__ import annotations

import re
from typing import Any, cast

from pydantic import BaseModel, Field

# BFCL's type names -> the Python type a JSON-decoded value must have
PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
NESTED_TYPES = ("array", "tuple")  # types whose items are type-checked too

Call = dict[str, dict[str, Any]]  # {function_name: {param: value}}


class Verdict(BaseModel):
    valid: bool
    error_type: str = ""
    errors: list[Any] = Field(default_factory=list)


OK = Verdict(valid=True)


def fail(error_type: str, message: Any) -> Verdict:
    return Verdict(valid=False, error_type=error_type, errors=[message])


def normalise_string(text: str) -> str:
    """BFCL's string normalisation: 'April 1, 2024' and 'april 1 2024' compare equal."""
    return re.sub(r"[ ,./\-_*^]", "", text).lower().replace("'", '"')


def _normalise_if_string(value: Any) -> Any:
    return normalise_string(value) if type(value) is str else value


def _answer_type(options: list[Any]) -> type | None:
    """The type of the first non-optional possible answer (None when all are the "" marker)."""
    for option in options:
        if option != "":
            return type(option)
    return None


def check_type(
    param: str, value: Any, options: list[Any], declared: str, expected: type, item_type: type | None
) -> tuple[Verdict, bool]:
    """(verdict, is_variable). A variable is a possible answer not of the declared type."""
    answer_type = _answer_type(options)
    is_variable = answer_type is not None and answer_type != expected
    nested_failed = False
    if type(value) is expected:
        if item_type is None:
            return OK, is_variable
        for option in options:
            # each option that is a list must accept every item's type; a non-list option passes
            if type(option) is list and not all(
                check_type(param, item, option, str(item_type), item_type, None)[0].valid
                for item in cast(list[Any], value)  # an array parameter: `expected` is list
            ):
                continue
            return OK, is_variable
        nested_failed = True
    if answer_type is not None and type(value) is answer_type and not nested_failed:
        return OK, True
    if nested_failed:
        return fail("type_error:nested", f"Nested type check failed for {param!r}: {value!r}"), is_variable
    return fail(
        "type_error:simple", f"Incorrect type for {param!r}: expected {declared}, got {type(value).__name__}"
    ), is_variable


def check_string(param: str, value: str, options: list[Any]) -> Verdict:
    if normalise_string(value) in [normalise_string(o) for o in options if type(o) is str]:
        return OK
    return fail("value_error:string", f"Invalid value for {param!r}: {value!r}; expected one of {options}")


def _normalise_option_list(option: Any) -> list[Any]:
    # BFCL iterates each option by index: "" becomes [], another string becomes its characters
    if isinstance(option, (list, str)):
        return [_normalise_if_string(item) for item in option]
    return [option]


def check_list(param: str, value: list[Any], options: list[Any]) -> Verdict:
    normalised = [_normalise_if_string(item) for item in value]
    if normalised in [_normalise_option_list(o) for o in options]:
        return OK
    return fail("value_error:list/tuple", f"Invalid value for {param!r}: {value!r}; expected one of {options}")


def check_dict(param: str, value: dict[str, Any], options: list[Any]) -> Verdict:
    """Flat dicts: each key must be allowed with an allowed value; required keys present."""
    verdict = fail("dict_checker:unclear", f"No possible answer for {param!r}")
    for option in options:
        if option == "":
            continue
        verdict = OK
        for key, item in value.items():
            if key not in option:
                verdict = fail("value_error:dict_key", f"Unexpected dict key {key!r}")
                break
            if _normalise_if_string(item) not in [_normalise_if_string(o) for o in option[key]]:
                verdict = fail("value_error:dict_value", f"Invalid value for {key!r}: {item!r}")
                break
        if verdict.valid:
            missing = [k for k, allowed in option.items() if k not in value and "" not in allowed]
            if missing:
                verdict = fail("value_error:dict_key", f"Missing dict key {missing[0]!r}")
        if verdict.valid:
            return OK
    return verdict


def check_list_of_dicts(param: str, value: list[Any], options: list[Any]) -> Verdict:
    verdict = fail("list_dict_checker:unclear", f"No possible answer for {param!r}")
    for option in options:
        if len(value) != len(option):
            verdict = fail("value_error:list_dict_count", "Wrong number of dictionaries in the list.")
            continue
        for item, allowed in zip(value, option, strict=True):
            verdict = check_dict(param, item, [allowed])
            if not verdict.valid:
                break
        else:
            return OK
    return verdict


def check_call(function: dict[str, Any], call: Call, answer: dict[str, dict[str, list[Any]]]) -> Verdict:
    """One model call against one possible answer `{name: {param: [options]}}` of `function`."""
    options_by_param = next(iter(answer.values()))
    name = function["name"]
    if name not in call:
        return fail("simple_function_checker:wrong_func_name", f"Function {name!r} not found in the call")
    arguments = call[name]
    properties = function["parameters"].get("properties", {})
    for param in function["parameters"].get("required", []):
        if param not in arguments:
            return fail("simple_function_checker:missing_required", f"Missing required parameter {param!r}")
    for param, value in arguments.items():
        if param not in properties or param not in options_by_param:
            return fail("simple_function_checker:unexpected_param", f"Unexpected parameter {param!r}")
        options = options_by_param[param]
        declared = properties[param]["type"]
        expected = PYTHON_TYPES[declared]
        item_type = PYTHON_TYPES[properties[param]["items"]["type"]] if declared in NESTED_TYPES else None
        if declared == "float" and type(value) is int:
            value = float(value)  # Python would convert an int argument silently
        verdict, is_variable = check_type(param, value, options, declared, expected, item_type)
        if not verdict.valid:
            return verdict
        if not is_variable:
            if expected is dict:
                verdict = check_dict(param, value, options)
            elif expected is list and item_type is dict:
                verdict = check_list_of_dicts(param, value, options)
            elif expected is str:
                verdict = check_string(param, value, options)
            elif expected is list:
                verdict = check_list(param, value, options)
            elif value not in options:
                verdict = fail(
                    "value_error:others", f"Invalid value for {param!r}: {value!r}; expected one of {options}"
                )
            if not verdict.valid:
                return verdict
            continue
        if value not in options:
            return fail("value_error:others", f"Invalid value for {param!r}: {value!r}; expected one of {options}")
    for param, options in options_by_param.items():
        if param not in arguments and "" not in options:
            return fail(
                "simple_function_checker:missing_optional", f"Parameter {param!r} not provided and not optional"
            )
    return OK


def _function_named(functions: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for function in functions:
        if function["name"] == name:
            return function
    raise KeyError(f"possible answer names {name!r}, which is not among the question's functions")


def check_parallel(functions: list[dict[str, Any]], calls: list[Call], answers: list[dict[str, Any]]) -> Verdict:
    """Every answer must match a distinct call, in any order (greedy, as BFCL does)."""
    if len(calls) != len(answers):
        return fail("parallel_function_checker_no_order:wrong_count", "Wrong number of functions.")
    matched: set[int] = set()
    for index, answer in enumerate(answers):
        function = _function_named(functions, next(iter(answer)))
        errors = []
        for call_index, call in enumerate(calls):
            if call_index in matched:
                continue
            verdict = check_call(function, call, answer)
            if verdict.valid:
                matched.add(call_index)
                break
            errors.append({call_index: verdict.errors})
        else:
            return Verdict(
                valid=False,
                error_type="parallel_function_checker_no_order:cannot_find_match",
                errors=[f"No call matches possible answer {index}", *errors],
            )
    return OK


def check_multiple(functions: list[dict[str, Any]], calls: list[Call], answers: list[dict[str, Any]]) -> Verdict:
    if len(calls) != len(answers):
        return fail("multiple_function_checker:wrong_count", "Wrong number of functions.")
    return check_call(_function_named(functions, next(iter(answers[0]))), calls[0], answers[0])


def is_irrelevance(category: str) -> bool:
    return "irrelevance" in category


def is_relevance(category: str) -> bool:
    return "relevance" in category and not is_irrelevance(category)


def check(
    category: str, functions: list[dict[str, Any]], calls: list[Call], answers: list[dict[str, Any]] | None
) -> Verdict:
    """The verdict for one question of `category` given the model's calls (`[]`: no call)."""
    if is_irrelevance(category):
        if calls:
            return fail("irrelevance:contains_call", f"Made {len(calls)} call(s) where none was wanted")
        return OK
    if is_relevance(category):
        return OK if calls else fail("relevance:no_call", "Made no call where one was wanted")
    if answers is None:
        raise ValueError(f"category {category!r} needs possible answers")
    if "parallel" in category:
        return check_parallel(functions, calls, answers)
    if "multiple" in category:
        return check_multiple(functions, calls, answers)
    if len(calls) != 1:
        return fail("simple_function_checker:wrong_count", "Wrong number of functions.")
    return check_call(functions[0], calls[0], answers[0])
