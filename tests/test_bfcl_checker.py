"""The BFCL AST checker: gold calls pass on every question, each kind of defect fails."""

from __future__ import annotations

import pytest

from evals.bfcl import CATEGORIES, check, load_category, normalise_string
from evals.bfcl.data import SUPPORTED, DataNotFound, find_data_dir, task_text, to_tool_specs
from evals.bfcl.gold import PERTURBATIONS, gold_calls, perturb

FUNCTION = {
    "name": "geo.distance",
    "description": "Distance between two cities.",
    "parameters": {
        "type": "dict",
        "properties": {
            "origin": {"type": "string"},
            "destination": {"type": "string"},
            "precision": {"type": "float"},
            "unit": {"type": "string"},
            "round_trip": {"type": "boolean"},
            "stops": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["origin", "destination"],
    },
}
ANSWER = {
    "geo.distance": {
        "origin": ["New York, NY", "NYC"],
        "destination": ["Boston"],
        "precision": [2.0, ""],
        "unit": ["km", ""],
        "round_trip": [False, ""],
        "stops": [[1, 2], ""],
    }
}


def simple(arguments: dict) -> bool:
    return check("simple_python", [FUNCTION], [{"geo.distance": arguments}], [ANSWER]).valid


@pytest.fixture(scope="module")
def questions(evaldata):
    return {category: load_category(category, evaldata) for category in SUPPORTED}


# live questions whose gold calls, built from the possible answers, fail BFCL's official checker
# too (evals/bfcl_official_compare.py --categories live_...: 7,232/7,232 verdicts agree): a
# required parameter with no possible value, or a possible answer naming a parameter the function
# lacks. No answer can be right on them.
UNANSWERABLE = {
    "live_simple_106-63-0",
    "live_simple_112-68-0",
    "live_multiple_507-149-4",
    "live_multiple_862-181-3",
    "live_multiple_964-207-0",
}


@pytest.mark.parametrize("category", SUPPORTED)
def test_gold_calls_score_100_percent(questions, category):
    failures = [q.id for q in questions[category] if not check(category, q.functions, gold_calls(q), q.answers).valid]
    assert len(questions[category]) >= (200 if category in CATEGORIES else 15)
    assert set(failures) == {i for i in UNANSWERABLE if i.startswith(category + "_")}


@pytest.mark.parametrize("kind", PERTURBATIONS)
@pytest.mark.parametrize("category", SUPPORTED)
def test_perturbed_calls_score_0_percent(questions, category, kind):
    perturbed = [(q, perturb(q, kind)) for q in questions[category]]
    applicable = [(q, calls) for q, calls in perturbed if calls is not None]
    if category.endswith("irrelevance") and kind != "extra_call":
        assert applicable == []  # only a call where none is wanted can be wrong there
        return
    if category == "live_relevance" and kind != PERTURBATIONS[0]:
        assert applicable == []  # only no call can be wrong there
        return
    if category in CATEGORIES:
        assert len(applicable) == len(questions[category])
    else:  # a live question's answer may have no value of the kind to change
        assert len(applicable) >= len(questions[category]) // 2
    passing = [q.id for q, calls in applicable if check(category, q.functions, calls, q.answers).valid]
    assert passing == []


def test_string_normalisation_follows_bfcl():
    assert normalise_string("New York, NY") == normalise_string("new-york ny") == "newyorkny"
    assert normalise_string("it's") == 'it"s'
    assert simple({"origin": "nyc", "destination": "BOSTON"})
    assert not simple({"origin": "New Jersey", "destination": "Boston"})


def test_int_is_accepted_for_float_but_bool_is_not_an_int():
    assert simple({"origin": "NYC", "destination": "Boston", "precision": 2})
    assert not simple({"origin": "NYC", "destination": "Boston", "precision": "2"})
    # array items are type-checked against each list option (BFCL lets a "" option pass that check)
    strict = {"geo.distance": {**ANSWER["geo.distance"], "stops": [[1, 2]]}}
    for stops in ([1, 2], [True, 2], [1.0, 2]):
        calls = [{"geo.distance": {"origin": "NYC", "destination": "Boston", "stops": stops}}]
        assert check("simple_python", [FUNCTION], calls, [strict]).valid is (stops == [1, 2] and type(stops[0]) is int)


def test_optional_parameters_via_the_empty_string_marker():
    assert simple({"origin": "NYC", "destination": "Boston"})
    assert simple({"origin": "NYC", "destination": "Boston", "unit": "km", "round_trip": False, "stops": [1, 2]})
    assert not simple({"origin": "NYC", "destination": "Boston", "unit": "miles"})
    assert not simple({"origin": "NYC", "destination": "Boston", "color": "red"})  # unknown parameter
    strict = {"geo.distance": {**ANSWER["geo.distance"], "unit": ["km"]}}  # no "": must be given
    assert not check(
        "simple_python", [FUNCTION], [{"geo.distance": {"origin": "NYC", "destination": "Boston"}}], [strict]
    ).valid


def test_dotted_names_must_match_exactly():
    verdict = check(
        "simple_python", [FUNCTION], [{"geo_distance": {"origin": "NYC", "destination": "Boston"}}], [ANSWER]
    )
    assert not verdict.valid and verdict.error_type.endswith("wrong_func_name")


def test_parallel_calls_match_in_any_order():
    answers = [
        {"geo.distance": {"origin": ["NYC"], "destination": ["Boston"]}},
        {"geo.distance": {"origin": ["Paris"], "destination": ["Lyon"]}},
    ]
    calls = [
        {"geo.distance": {"origin": "Paris", "destination": "Lyon"}},
        {"geo.distance": {"origin": "NYC", "destination": "Boston"}},
    ]
    assert check("parallel", [FUNCTION], calls, answers).valid
    assert not check("parallel", [FUNCTION], calls[:1], answers).valid
    assert not check("parallel", [FUNCTION], [calls[0], calls[0]], answers).valid


def test_irrelevance_means_no_call():
    assert check("irrelevance", [FUNCTION], [], None).valid
    assert not check("irrelevance", [FUNCTION], [{"geo.distance": {"origin": "a", "destination": "b"}}], None).valid


def test_functions_become_json_schema_tool_specs():
    spec = to_tool_specs([FUNCTION])[0]
    assert spec.name == "geo.distance"
    assert spec.parameters["type"] == "object"
    assert spec.parameters["properties"]["precision"]["type"] == "number"
    assert spec.parameters["required"] == ["origin", "destination"]


def test_missing_data_gives_a_clear_error(tmp_path):
    with pytest.raises(DataNotFound, match="--data-dir"):
        find_data_dir(tmp_path)


def test_relevance_means_some_call():
    assert check("live_relevance", [FUNCTION], [{"geo.distance": {}}], None).valid
    assert not check("live_relevance", [FUNCTION], [], None).valid


def test_a_question_with_a_system_message_becomes_one_task_with_roles(questions):
    with_system = next(q for q in questions["live_simple"] if len(q.messages) > 1)
    text = task_text(with_system)
    assert text.startswith("system: ") and "\n\nuser: " in text
    plain = questions["simple_python"][0]
    assert task_text(plain) == plain.messages[0]["content"]
