"""The run context: everything a planner may use during one task, and nothing more.

A planner never calls a tool or a model directly: it asks the context, which traces the call,
counts tokens, applies the executor's policy and keeps the steps of the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.models.base import Backend
from toolkit.models.parsing import clean_text
from toolkit.registry import ToolRegistry
from toolkit.runtime.dry_run import DryRunDone
from toolkit.runtime.executor import Executor
from toolkit.runtime.trace import TraceRecorder
from toolkit.types import LLMRequest, LLMResponse, Observation, Step, Timings, ToolCall, ToolSpec, TraceEvent, Usage


class MaxStepsReached(Exception):
    """The planner used its budget of steps without an answer."""


class PlannerError(Exception):
    """The planner cannot go on (e.g. the backend failed for good)."""


@dataclass
class RunContext:
    task: str
    task_id: str
    registry: ToolRegistry
    backend: Backend
    executor: Executor
    tools: list[ToolSpec]  # the actions offered for this task
    trace: TraceRecorder
    max_steps: int = 10
    session_id: str = "default"
    steps: list[Step] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    options: dict[str, Any] = field(default_factory=dict)  # planner-specific settings
    redact: Callable[[str], str] | None = None  # hides secrets in what the model says
    # a dry run (toolkit/runtime/dry_run.py): the executor records calls without running them,
    # and the run ends once calls are recorded and the planner would go on
    dry_run: bool = False
    recorded: list[tuple[int | None, ToolCall, Observation]] = field(default_factory=list)

    # emit(kind, **fields): put an event in the task's trace. The recorder's own method, not a
    # wrapper around it: a step emits four events, and the engine's overhead per step is measured
    emit: Callable[..., TraceEvent] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.emit = self.trace.emit

    async def generate(
        self, request: LLMRequest, *, step: int | None = None, node: str | None = None, parent: str | None = None
    ) -> LLMResponse:
        self._end_dry_run_once_called()
        response = await self.backend.generate(request)
        response.text = self.clean_reply(response.text)
        self.record_model_call(response.text, response.usage, response.timings, step=step, node=node, parent=parent)
        return response

    def clean_reply(self, text: str) -> str:
        """A model's text as it may enter traces and prompts: lone surrogates (they would break
        every JSON dump later) and secrets removed."""
        text = clean_text(text)
        if self.redact is not None and text:
            text = self.redact(text)
        return text

    def record_model_call(
        self,
        text: str,
        usage: Usage,
        timings: Timings | None,
        *,
        step: int | None = None,
        node: str | None = None,
        parent: str | None = None,
    ) -> None:
        """Add a model call's usage to the task's and put it in the trace (`generate` does this;
        planners that stream a reply call it themselves)."""
        self.usage = self.usage + usage
        self.emit("model_call", step=step, node=node, parent=parent, text=text or None, usage=usage, timings=timings)

    async def execute(
        self, calls: list[ToolCall], *, step: int | None = None, node: str | None = None, parent: str | None = None
    ) -> list[Observation]:
        for call in calls:
            self.emit("call", step=step, call=call, node=node, parent=parent)
        observations = await self.executor.execute_many(calls, self.session_id)
        for call, obs in zip(calls, observations, strict=True):
            self.emit("observation", step=step, observation=obs, node=node, parent=parent)
            if self.dry_run:
                self.recorded.append((step, call, obs))
        return observations

    async def execute_one(
        self, call: ToolCall, *, step: int | None = None, node: str | None = None, parent: str | None = None
    ) -> Observation:
        self.emit("call", step=step, call=call, node=node, parent=parent)
        obs = await self.executor.execute(call, self.session_id)
        self.emit("observation", step=step, observation=obs, node=node, parent=parent)
        if self.dry_run:
            self.recorded.append((step, call, obs))
        return obs

    def _end_dry_run_once_called(self) -> None:
        """In a dry run, going on after calls were recorded would need their results: stop."""
        if self.dry_run and self.recorded:
            raise DryRunDone(f"dry run: {len(self.recorded)} call(s) recorded")

    def keep_recorded_calls(self) -> list[ToolCall]:
        """A dry run's calls, also put on their steps (a planner stopped mid-step had not yet
        recorded them there). Returns them in the order they were recorded."""
        for index, call, obs in self.recorded:
            step = self.steps[index] if index is not None and 0 <= index < len(self.steps) else None
            if step is not None and not any(c.id == call.id for c in step.calls):
                step.calls.append(call)
                step.observations.append(obs)
        return [call for _, call, _ in self.recorded]

    def new_step(self) -> Step:
        self._end_dry_run_once_called()
        if len(self.steps) >= self.max_steps:
            raise MaxStepsReached(f"no answer after {self.max_steps} steps")
        step = Step(index=len(self.steps))
        self.steps.append(step)
        return step

    def record(
        self,
        step: Step,
        thought: str,
        calls: list[ToolCall],
        observations: list[Observation],
        usage: Usage,
        started: float,
    ) -> None:
        step.thought = thought
        step.calls = calls
        step.observations = observations
        step.usage = usage
        step.duration_s = time.perf_counter() - started
