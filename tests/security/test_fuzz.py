"""Fuzzing (T6): 10,000 manifests, 10,000 model outputs, and tool results that are huge, binary or
invalid UTF-8: every one ends cleanly, never in an unhandled exception.

TOOLKIT_FUZZ_EXAMPLES scales the two big runs (default 10,000, as the threat model promises).
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_manifest_property import json_like, manifest_like
from toolkit import Agent, ToolRegistry, tool
from toolkit.manifest import Manifest, ManifestError, parse_manifest
from toolkit.models.parsing import parse_model_output
from toolkit.models.scripted import ScriptedBackend
from toolkit.runtime.executor import Executor
from toolkit.types import ToolCall, ToolSpec

EXAMPLES = int(os.environ.get("TOOLKIT_FUZZ_EXAMPLES", "10000"))
FAST = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))

SPECS = [
    ToolSpec(
        name="math.calculate",
        description="Evaluate.",
        parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    ),
    ToolSpec(
        name="search",
        description="Search.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}, "k": {"type": "integer"}},
            "required": ["query"],
        },
    ),
]

call_like = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["math.calculate", "search", "math", "nope", ""]), st.text(max_size=12))},
    optional={"arguments": st.one_of(json_like, st.text(max_size=30)), "args": json_like, "id": json_like},
)
model_text = st.one_of(
    st.text(max_size=300),
    json_like.map(lambda v: json.dumps(v)),
    call_like.map(lambda c: json.dumps(c)),
    st.lists(call_like, max_size=4).map(lambda c: json.dumps(c)),
    call_like.map(lambda c: f"<tool_call>{json.dumps(c)}</tool_call>"),
    call_like.map(lambda c: f"```json\n{json.dumps(c)}\n```"),
    st.tuples(call_like, st.integers(1, 60)).map(lambda t: json.dumps(t[0])[: t[1]]),  # cut short
    st.integers(1, 200).map(lambda n: "[" * n + "]" * (n // 2)),  # deep and unbalanced
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="surrogateescape")),  # lone surrogates
)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~1 min of CPU; generous for a loaded machine
@settings(max_examples=EXAMPLES, **FAST)
@given(st.one_of(json_like, manifest_like))
def test_fuzz_manifests(doc):
    try:
        assert isinstance(parse_manifest(doc, "fuzz.yaml"), Manifest)
    except ManifestError as exc:
        assert exc.errors


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(max_examples=EXAMPLES, **FAST)
@given(model_text, st.sampled_from(["auto", "required", "none"]))
def test_fuzz_model_outputs_parse_or_explain(text, tool_choice):
    parsed = parse_model_output(text, SPECS, tool_choice=tool_choice)
    for call in parsed.calls:
        assert call.name in {"math.calculate", "search"} and isinstance(call.arguments, dict)
    assert isinstance(parsed.text, str)
    response = parsed.to_response()
    assert response.parse_error is None or isinstance(response.parse_error, str)


@tool
def calculate(expression: str) -> str:
    """Evaluate."""
    return "4"


@pytest.mark.slow  # 200 agent runs: ~2 s of CPU
@settings(max_examples=max(50, EXAMPLES // 50), **FAST)
@given(st.lists(model_text, min_size=1, max_size=3))
def test_fuzz_model_outputs_through_an_agent(texts):
    """Whatever the model says, the task returns with a status (the scripted backend plays the model)."""
    registry = ToolRegistry()
    registry.add_function(calculate)
    backend = ScriptedBackend([{"text": t} for t in texts])
    result = asyncio.run(Agent(model=backend, tools=registry, max_steps=4, approver="auto").arun("fuzz"))
    assert result.status in ("ok", "max_steps", "error")
    result.model_dump_json()


tool_result = st.one_of(
    st.binary(max_size=5000),
    st.binary(min_size=1, max_size=64).map(lambda b: b * 3000),  # ~200 KB of bytes
    st.text(max_size=50).map(lambda s: s * 20000),  # huge text
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    st.binary(max_size=100).map(lambda b: b.decode("utf-8", errors="surrogateescape")),  # lone surrogates
    st.binary(max_size=50).map(lambda b: {"text": b.decode("utf-8", errors="surrogateescape"), "n": [1, 2]}),
    json_like,
)


@settings(max_examples=300, **FAST)
@given(tool_result)
def test_fuzz_tool_results(value):
    registry = ToolRegistry()

    @tool
    def produce() -> object:
        """Return the fuzzed value."""
        return value

    registry.add_function(produce)
    obs = asyncio.run(Executor(registry, max_output_chars=4000, approver="auto").execute(ToolCall(name="produce")))
    assert obs.ok and isinstance(obs.text, str)
    assert len(obs.text) <= 4000 + 100  # truncated with its marker
    obs.model_dump_json()
