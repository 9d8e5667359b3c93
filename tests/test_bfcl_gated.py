"""`--mode gated` (evals/bfcl/engine.py, the default): the question's words settle whether to call
(toolkit.relevance), and listed calls that add nothing are dropped. On a scripted backend that
plays its responses in order (`mode: sequence`) and records the requests it was sent."""

from __future__ import annotations

import asyncio

import yaml

from evals.bfcl.engine import calls_list, gated
from toolkit.models import load_backend
from toolkit.types import LLMRequest, Message, ToolSpec

PLAY = ToolSpec(
    name="spotify.play_artist",
    description="Play music by an artist.",
    parameters={"type": "object", "properties": {"artist": {"type": "string"}}, "required": ["artist"]},
)


RADIO = ToolSpec(
    name="radio.play_station",
    description="Play a radio station.",
    parameters={"type": "object", "properties": {"artist": {"type": "string"}}, "required": ["artist"]},
)


def call(artist: str, name: str = "spotify.play_artist") -> dict:
    return {"name": name, "arguments": {"artist": artist}}


def answer(tmp_path, question: str, responses: list[dict], tools: tuple[ToolSpec, ...] = (PLAY,)):
    path = tmp_path / "script.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mode": "sequence",
                "scripts": [{"match": ".", "responses": [*responses, {"text": "one request too many"}]}],
            }
        )
    )
    backend = load_backend(f"scripted:{path}")
    backend.record_requests = True
    request = LLMRequest(messages=[Message(role="user", content=question)], tools=list(tools))
    response = asyncio.run(gated(backend, request, max_calls=4))
    return [c.arguments["artist"] for c in response.tool_calls], response, backend.requests


def test_a_question_naming_the_function_gets_the_list_without_a_tool_turn(tmp_path):
    question = "Play the artist Taylor Swift, then Maroon 5."
    listed = {
        "tool_calls": [
            call("Taylor Swift"),
            call("Maroon 5"),
            call("Taylor Swift") | {"arguments": {"artist": "taylor swift"}},
        ]
    }
    artists, _, requests = answer(tmp_path, question, [listed])
    assert artists == ["Taylor Swift", "Maroon 5"]  # the third repeats a value already used
    assert len(requests) == 1 and requests[0].constraint.kind == "json_schema"


def test_an_empty_list_for_a_named_function_falls_back_to_a_tool_turn_that_must_call(tmp_path):
    responses = [{"text": '{"calls": []}'}, {"tool_calls": [call("Adele")]}]
    artists, response, requests = answer(tmp_path, "Play the artist Adele.", responses)
    assert artists == ["Adele"]
    assert len(requests) == 2 and requests[1].tool_choice == "required" and requests[1].constraint is None


def test_a_list_calling_only_functions_the_question_does_not_name_is_asked_again_with_the_named_ones(tmp_path):
    # "play the artist ... on spotify" names spotify.play_artist (3 words), not radio.play_station (1)
    responses = [{"tool_calls": [call("Adele", "radio.play_station")]}, {"tool_calls": [call("Adele")]}]
    _, response, requests = answer(tmp_path, "Play the artist Adele on spotify.", responses, tools=[RADIO, PLAY])
    assert [c.name for c in response.tool_calls] == ["spotify.play_artist"]
    offered = [
        [
            item["properties"]["name"]["const"]
            for item in r.constraint.json_schema["properties"]["calls"]["items"]["anyOf"]
        ]
        for r in requests
    ]
    assert offered == [["radio.play_station", "spotify.play_artist"], ["spotify.play_artist"]]


def test_a_question_sharing_no_word_with_the_functions_gets_no_call_and_no_request(tmp_path):
    artists, response, requests = answer(tmp_path, "How tall is Mount Everest?", [{"tool_calls": [call("Adele")]}])
    assert artists == [] and requests == [] and "no call" in response.text


def test_an_unclear_question_goes_through_the_tool_turn_first(tmp_path):
    # "music" is in the description only: the tool turn decides, and here declines
    artists, response, requests = answer(tmp_path, "Recommend some music.", [{"text": "No function fits."}])
    assert artists == [] and response.text == "No function fits." and len(requests) == 1
    assert requests[0].constraint is None and requests[0].tool_choice == "auto"


def test_numbers_the_list_cut_short_are_mended_from_the_question(tmp_path):
    loan = ToolSpec(
        name="mortgage.monthly_payment",
        description="Monthly payment of a mortgage.",
        parameters={
            "type": "object",
            "properties": {"amount": {"type": "integer"}, "years": {"type": "integer"}},
            "required": ["amount", "years"],
        },
    )
    listed = {"tool_calls": [{"name": "mortgage.monthly_payment", "arguments": {"amount": 400, "years": 15}}]}
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump({"mode": "sequence", "scripts": [{"match": ".", "responses": [listed]}]}))
    request = LLMRequest(
        messages=[Message(role="user", content="The monthly mortgage payment for $400,000 over 15 years?")],
        tools=[loan],
    )
    response = asyncio.run(gated(load_backend(f"scripted:{path}"), request, max_calls=4))
    assert [c.arguments for c in response.tool_calls] == [{"amount": 400000, "years": 15}]


def test_the_list_ends_at_the_first_call_that_repeats_an_earlier_one(tmp_path):
    looping = '{"calls": [{"name": "spotify.play_artist", "arguments": {"artist": "Adele"}}, ' * 1
    looping += '{"name": "spotify.play_artist", "arguments": {"artist": "Adele"}}, {"name": "radio.play_station", '
    path = tmp_path / "script.yaml"
    path.write_text(
        yaml.safe_dump(
            {"mode": "sequence", "scripts": [{"match": ".", "responses": [{"text": looping, "chunk_chars": 5}]}]}
        )
    )
    request = LLMRequest(
        messages=[Message(role="user", content="Play the artist Adele on spotify.")], tools=[PLAY, RADIO]
    )
    response = asyncio.run(calls_list(load_backend(f"scripted:{path}"), request, max_calls=4))
    assert response.text == "" and response.parse_error is None
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("spotify.play_artist", {"artist": "Adele"})]
