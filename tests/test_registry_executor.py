"""Registry loading and the executor's guarantees, on real manifests bound to real functions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from toolkit import Agent, ToolRegistry, tool
from toolkit.bindings import ToolContext
from toolkit.models.scripted import ScriptedBackend
from toolkit.registry import UnknownToolError
from toolkit.runtime.executor import Executor
from toolkit.types import ErrorCode, ToolCall

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.load_file(FIXTURES / "echo.yaml")
    assert not reg.errors
    return reg


async def run(registry, name, args=None, **kw):
    return await Executor(registry, **kw).execute(ToolCall(name=name, arguments=args or {}))


async def test_call_returns_structured_content(registry):
    obs = await run(registry, "echo.echo", {"text": "hi"})
    assert obs.ok and obs.content == {"text": "hi"} and obs.text == '{"text": "hi"}'


async def test_invalid_arguments_never_reach_the_tool(registry):
    obs = await run(registry, "echo.echo", {"text": 3})
    assert not obs.ok and obs.error == ErrorCode.invalid_arguments and "text" in obs.message


async def test_unknown_tool_and_action(registry):
    assert (await run(registry, "nope.x")).error == ErrorCode.unknown_tool
    obs = await run(registry, "echo.nope")
    assert obs.error == ErrorCode.unknown_tool and "echo.upper" in obs.message


@pytest.mark.parametrize("action", ["echo.slow", "echo.hang"])
async def test_hung_tool_is_cut_off_at_its_timeout(registry, action):
    obs = await run(registry, action, {"seconds": 30})
    assert obs.error == ErrorCode.timeout and obs.duration_s < 5


async def test_only_idempotent_actions_are_retried(registry):
    from tests.fixtures import echo_tools

    echo_tools._flaky_calls["n"] = 0
    ok = await run(registry, "echo.flaky", retry_backoff_s=0)
    assert ok.ok and ok.attempts == 2
    echo_tools._flaky_calls["n"] = 0
    failed = await run(registry, "echo.flaky_once", retry_backoff_s=0)
    assert failed.error == ErrorCode.tool_error and failed.attempts == 1 and "transient" in failed.message


async def test_long_output_is_truncated_with_a_marker(registry):
    obs = await run(registry, "echo.big", {"size": 50_000}, max_output_chars=1000)
    assert obs.truncated and len(obs.text) < 1200 and "49000 of 50000 characters omitted" in obs.text


async def test_state_is_kept_per_session(registry):
    ex = Executor(registry)
    await ex.execute(ToolCall(name="echo.remember", arguments={"value": "a"}), "s1")
    second = await ex.execute(ToolCall(name="echo.remember", arguments={"value": "b"}), "s1")
    other = await ex.execute(ToolCall(name="echo.remember", arguments={"value": "c"}), "s2")
    assert second.content["values"] == ["a", "b"] and other.content["values"] == ["c"]


async def test_destructive_action_needs_approval(registry):
    async def deny(call, resolved):
        return False

    obs = await run(registry, "echo.wipe", {"text": "x"}, approver=deny)
    assert obs.error == ErrorCode.denied
    assert (await run(registry, "echo.echo", {"text": "x"}, approver=deny)).ok  # read-only: no question


async def test_many_calls_run_concurrently_under_a_limit(registry):
    ex = Executor(registry, max_concurrency=2)
    calls = [ToolCall(name="echo.slow", arguments={"seconds": 0.1}) for _ in range(6)]
    active = 0
    peak = 0
    original = registry.tools["echo"].bindings["slow"].invoke

    async def counting(arguments, ctx):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            return await original(arguments, ctx)
        finally:
            active -= 1

    registry.tools["echo"].bindings["slow"].invoke = counting
    observations = await ex.execute_many(calls)
    assert all(o.ok for o in observations) and peak == 2


async def test_cancellation_propagates(registry):
    task = asyncio.ensure_future(Executor(registry).execute(ToolCall(name="echo.slow", arguments={"seconds": 0.25})))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_duplicate_names_are_an_error_naming_both_sources(tmp_path):
    copy = tmp_path / "echo_again.yaml"
    copy.write_text((FIXTURES / "echo.yaml").read_text())
    reg = ToolRegistry()
    reg.load_file(FIXTURES / "echo.yaml")
    reg.load_file(copy)
    (err,) = reg.errors
    assert str(copy) in str(err) and str(FIXTURES / "echo.yaml") in str(err)


def test_missing_credentials_make_one_tool_unavailable_not_the_others(tmp_path):
    data = yaml.safe_load((FIXTURES / "echo.yaml").read_text())
    data.update(name="needs_key", auth={"env": ["TOOLKIT_TEST_KEY_THAT_IS_NOT_SET"]})
    (tmp_path / "needs_key.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "echo.yaml").write_text((FIXTURES / "echo.yaml").read_text())
    reg = ToolRegistry(environ={})
    reg.load_folder(tmp_path)
    assert reg.tools["echo"].available
    assert not reg.tools["needs_key"].available
    assert "TOOLKIT_TEST_KEY_THAT_IS_NOT_SET" in reg.tools["needs_key"].reason
    with pytest.raises(LookupError, match="unavailable"):
        reg.resolve("needs_key.echo")


def test_missing_module_makes_a_tool_unavailable(tmp_path):
    (tmp_path / "ghost.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "ghost",
                "description": "x",
                "binding": {"type": "python", "module": "no_such_module_xyz"},
                "actions": [{"name": "a", "description": "x"}],
            }
        )
    )
    reg = ToolRegistry()
    reg.load_folder(tmp_path)
    assert not reg.tools["ghost"].available and "no_such_module_xyz" in reg.tools["ghost"].reason


def test_tool_decorator_builds_schema_from_hints_and_docstring():
    @tool(idempotent=True)
    def convert(amount: float, unit: str = "m", tags: list[str] | None = None) -> str:
        """Convert a length.

        Args:
            amount: how much
            unit: target unit
        """
        return f"{amount}{unit}"

    reg = ToolRegistry()
    reg.add_function(convert)
    (spec,) = reg.specs()
    assert spec.name == "convert" and spec.description == "Convert a length."
    props = spec.parameters["properties"]
    assert props["amount"] == {"type": "number", "description": "how much"}
    assert props["unit"]["default"] == "m" and spec.parameters["required"] == ["amount"]
    assert reg.resolve("convert").action.annotations.idempotent
    assert convert(2.0) == "2.0m"  # still a plain function
    with pytest.raises(UnknownToolError):
        reg.resolve("converter")


async def test_a_task_end_closes_its_session_and_the_agent_close_the_shared_state():

    closed: list[str] = []

    def visit(ctx: ToolContext) -> str:
        """Keep something per task (a page) and something across tasks (a server connection)."""
        ctx.state.setdefault("__close__", lambda: closed.append(f"session {ctx.session_id}"))
        if "__close__" not in ctx.shared_state:

            async def close_shared() -> None:
                closed.append("shared")

            ctx.shared_state["__close__"] = close_shared
        return "ok"

    reg = ToolRegistry()
    reg.add_function(visit)
    script = [
        {"tool_calls": [{"name": "visit", "arguments": {}}]},
        {"tool_calls": [{"name": "visit", "arguments": {}}]},
        {"text": "done"},
    ]
    agent = Agent(model=ScriptedBackend(script), tools=reg, approver="auto")
    for task_id in ("t1", "t2"):
        result = await agent.arun("visit twice", task_id)
        assert result.answer == "done" and len(result.calls) == 2
    assert closed == ["session t1", "session t2"]  # each once, when its task ended
    assert not agent.executor._sessions  # nothing kept for finished tasks
    await agent.aclose()
    assert closed == ["session t1", "session t2", "shared"]


async def test_a_failing_cleanup_is_logged_and_the_task_keeps_its_result(caplog):

    def leaky(ctx: ToolContext) -> str:
        """A tool whose cleanup fails."""

        def close() -> None:
            raise RuntimeError("socket already gone")

        ctx.state["__close__"] = close
        return "ok"

    reg = ToolRegistry()
    reg.add_function(leaky)
    agent = Agent(
        model=ScriptedBackend([{"tool_calls": [{"name": "leaky", "arguments": {}}]}, {"text": "done"}]),
        tools=reg,
        approver="auto",
    )
    result = await agent.arun("go", "t1")
    assert result.status == "ok" and result.answer == "done"
    assert "closing leaky's state of session t1 failed: RuntimeError: socket already gone" in caplog.text
    await agent.aclose()
