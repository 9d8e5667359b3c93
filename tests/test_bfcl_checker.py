"""The BFCL AST checker: gold calls pass on every question, each kind of defect fails."""

from __future__ import annotations

import pytest

from evals.bfcl import CATEGORIES, check, load_category, normalise_string
from evals.bfcl.data import DataNotFound, find_data_dir, to_tool_specs
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
    return {category: load_category(category, evaldata) for category in CATEGORIES}


@pytest.mark.parametrize("category", CATEGORIES)
def test_gold_calls_score_100_percent(questions, category):
    failures = [q.id for q in questions[category] if not check(category, q.functions, gold_calls(q), q.answers).valid]
    assert len(questions[category]) >= 200
    assert failures == []


@pytest.mark.parametrize("kind", PERTURBATIONS)
@pytest.mark.parametrize("category", CATEGORIES)
def test_perturbed_calls_score_0_percent(questions, category, kind):
    perturbed = [(q, perturb(q, kind)) for q in questions[category]]
    applicable = [(q, calls) for q, calls in perturbed if calls is not None]
    if category == "irrelevance" and kind != "extra_call":
        assert applicable == []  # only a call where none is wanted can be wrong there
        return
    assert len(applicable) == len(questions[category])
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


def test_tool_turns_collect_calls_until_the_model_answers_and_cap_follow_ups():
    """The engine's tool-turns mode: further turns until an answer; follow-ups, whose answers are
    thrown away, get a small token budget."""
    import asyncio

    from evals.bfcl.engine import FOLLOW_UP_MAX_TOKENS, tool_turns
    from toolkit.models.scripted import ScriptedBackend
    from toolkit.types import LLMRequest, Message, Sampling, ToolSpec

    spec = ToolSpec(
        name="area", description="Area.", parameters={"type": "object", "properties": {"r": {"type": "number"}}}
    )
    backend = ScriptedBackend(
        [
            {"tool_calls": [{"name": "area", "arguments": {"r": 1}}]},
            {"tool_calls": [{"name": "area", "arguments": {"r": 2}}]},
            {"text": "done"},
        ]
    )
    backend.record_requests = True
    request = LLMRequest(
        messages=[Message(role="user", content="Areas for r=1 and r=2")],
        tools=[spec],
        sampling=Sampling(max_tokens=256),
    )
    response = asyncio.run(tool_turns(backend, request, max_calls=4))
    assert [c.arguments for c in response.tool_calls] == [{"r": 1}, {"r": 2}]
    assert [r.sampling.max_tokens for r in backend.requests] == [256, FOLLOW_UP_MAX_TOKENS, FOLLOW_UP_MAX_TOKENS]
