"""`--mode hybrid` (evals/bfcl/engine.py): a tool turn decides whether to call, and when it calls,
the calls are a list's, decoded next. On a scripted backend that plays the tool turn and then the
list (`mode: sequence`)."""

from __future__ import annotations

import asyncio

import yaml

from evals.bfcl.engine import hybrid
from toolkit.models import load_backend
from toolkit.types import LLMRequest, Message, ToolSpec

PLAY = ToolSpec(
    name="spotify.play",
    description="Play an artist.",
    parameters={"type": "object", "properties": {"artist": {"type": "string"}}, "required": ["artist"]},
)


def call(artist: str) -> dict:
    return {"name": "spotify.play", "arguments": {"artist": artist}}


def answer(tmp_path, tool_turn: dict, listed: list[dict] | dict):
    """What hybrid returns when the tool turn replies `tool_turn` and the list request `listed`
    (its calls, or the whole response)."""
    path = tmp_path / "script.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mode": "sequence",
                "scripts": [
                    {
                        "match": ".",
                        "responses": [
                            tool_turn,
                            listed if isinstance(listed, dict) else {"tool_calls": listed},
                            {"text": "a third request"},
                        ],
                    }
                ],
            }
        )
    )
    backend = load_backend(f"scripted:{path}")
    backend.record_requests = True
    request = LLMRequest(messages=[Message(role="user", content="Play Taylor Swift, then Maroon 5.")], tools=[PLAY])
    response = asyncio.run(hybrid(backend, request, max_calls=4))
    return [c.arguments["artist"] for c in response.tool_calls], response, backend.requests


def test_when_the_tool_turn_calls_the_calls_are_the_lists(tmp_path):
    artists, _, requests = answer(
        tmp_path, {"tool_calls": [call("Taylor Swift")]}, [call("Maroon 5"), call("Taylor Swift")]
    )
    assert artists == ["Maroon 5", "Taylor Swift"]
    # the list request: the functions as signatures in its system text, a list schema of calls
    assert requests[1].constraint.json_schema["properties"]["calls"]["maxItems"] == 4
    assert "- spotify.play(artist: string): Play an artist." in requests[1].messages[0].content


def test_an_empty_or_unreadable_list_leaves_the_tool_turns_call(tmp_path):
    for listed in ({"text": '{"calls": []}'}, {"text": '{"calls": [{"name": "spotify.pl'}):
        artists, _, _ = answer(tmp_path, {"tool_calls": [call("Taylor Swift")]}, listed)
        assert artists == ["Taylor Swift"]


def test_no_call_from_the_tool_turn_is_the_answer_and_no_list_is_asked_for(tmp_path):
    artists, response, requests = answer(tmp_path, {"text": "No function fits."}, [call("Maroon 5")])
    assert artists == [] and response.text == "No function fits." and len(requests) == 1
