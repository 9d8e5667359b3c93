"""Dispatching plan steps: each step runs as soon as the steps it depends on are done, even while
the rest of the plan is still being generated.

Steps arrive one by one (`add`). A step whose dependencies are all done starts at once; a step
whose dependency failed is skipped (with an observation saying why); a step that waits for an
id not seen yet keeps waiting until the plan is complete (`finish`), when unknown references
and cycles are known for sure and become errors. Every step ends with an Observation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from toolkit.planner.dag.parse import to_step
from toolkit.planner.dag.plan import (
    PlanError,
    PlanStep,
    ReferenceFailure,
    check_step,
    find_cycles,
    resolve,
    result_value,
)
from toolkit.runtime.context import RunContext
from toolkit.types import ErrorCode, Observation, ToolCall, new_id

Status = Literal["waiting", "running", "done", "failed"]


@dataclass
class StepState:
    step: PlanStep
    deps: set[int]
    status: Status = "waiting"
    call: ToolCall | None = None
    observation: Observation | None = None
    value: Any = None  # what `$id` stands for once done


@dataclass
class StepScheduler:
    ctx: RunContext
    tool_names: set[str]
    step_index: int  # the context step (planning round) these plan steps belong to
    max_plan_steps: int = 12
    states: dict[int, StepState] = field(default_factory=dict)
    errors: list[PlanError] = field(default_factory=list)
    failed_raw: list[Observation] = field(default_factory=list)  # steps that never became PlanSteps
    repeated: bool = False  # a step repeated an earlier one: the plan is looping
    dropped: set[int] = field(default_factory=set)  # ids of the repeated steps
    cut_off: bool = False  # the planner stopped the plan's generation (a runaway step)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _count: int = 0

    # ---- steps arrive ----------------------------------------------------------------------

    def add(self, raw: Any) -> None:
        """A step object from the plan (parsed JSON). Never raises: problems become errors."""
        position = self._count
        self._count += 1
        step, error = to_step(raw, position)
        if step is None:
            self._plan_error(error, None)
            return
        if position >= self.max_plan_steps:
            self._plan_error(
                PlanError(step=step.id, message=f"the plan is too long; at most {self.max_plan_steps} steps run"), step
            )
            return
        error = check_step(step, self.tool_names, set(self.states))
        if error is None:
            error = self._repeat_error(step)
        if error is not None:
            self._plan_error(error, step)
            return
        self.states[step.id] = StepState(step=step, deps=step.dependencies())
        self._dispatch_ready()

    def _repeat_error(self, step: PlanStep) -> PlanError | None:
        """A step identical to an earlier one (same action, arguments, dependencies) is how a small
        model's plan loops; it is dropped, and `repeated` tells the planner to stop the plan."""
        for state in self.states.values():
            earlier = state.step
            if (earlier.action, earlier.arguments, sorted(earlier.depends_on)) == (
                step.action,
                step.arguments,
                sorted(step.depends_on),
            ):
                self.repeated = True
                self.dropped.add(step.id)
                return PlanError(step=step.id, message=f"repeats step {earlier.id}; dropped")
        return None

    def _plan_error(self, error: PlanError | None, step: PlanStep | None) -> None:
        assert error is not None
        self.errors.append(error)
        obs = _error_observation(step, ErrorCode.parse_error, f"plan error: {error.message}")
        self.ctx.emit("observation", step=self.step_index, observation=obs, node=str(step.id) if step else None)
        if step is not None and step.id not in self.states:
            self.states[step.id] = StepState(step=step, deps=set(), status="failed", observation=obs)
        else:
            self.failed_raw.append(obs)
        self._dispatch_ready()

    # ---- dispatching -----------------------------------------------------------------------

    def _dispatch_ready(self) -> None:
        changed = True
        while changed:  # a skipped step can make its own dependents skippable: repeat to a fixpoint
            changed = False
            for state in self.states.values():
                if state.status != "waiting":
                    continue
                failed = sorted(d for d in state.deps if d in self.states and self.states[d].status == "failed")
                if failed:
                    self._fail(state, ErrorCode.cancelled, f"not run: step(s) {', '.join(map(str, failed))} failed")
                    changed = True
                elif all(d in self.states and self.states[d].status == "done" for d in state.deps):
                    state.status = "running"
                    task = asyncio.ensure_future(self._run(state))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _run(self, state: StepState) -> None:
        if self.ctx.dry_run:  # no step has a result: the call keeps its references as written
            state.call = ToolCall(id=new_id("step"), name=state.step.action, arguments=state.step.arguments)
            state.observation = await self.ctx.execute_one(state.call, step=self.step_index, node=str(state.step.id))
            state.status = "done" if state.observation.ok else "failed"
            self._dispatch_ready()
            return
        try:
            arguments = resolve(
                state.step.arguments, {i: s.value for i, s in self.states.items() if s.status == "done"}
            )
        except ReferenceFailure as exc:
            self._fail(state, ErrorCode.invalid_arguments, f"reference error: {exc}")
            self._dispatch_ready()
            return
        state.call = ToolCall(id=new_id("step"), name=state.step.action, arguments=arguments)
        obs = await self.ctx.execute_one(state.call, step=self.step_index, node=str(state.step.id))
        state.observation = obs
        if obs.ok:
            state.status, state.value = "done", result_value(obs.content, obs.text)
        else:
            state.status = "failed"
        self._dispatch_ready()

    def _fail(self, state: StepState, code: ErrorCode, message: str) -> None:
        state.status = "failed"
        state.observation = _error_observation(state.step, code, message)
        self.ctx.emit("observation", step=self.step_index, observation=state.observation, node=str(state.step.id))

    # ---- the plan is complete ----------------------------------------------------------------

    async def finish(self) -> None:
        """No more steps will come: fail what can never run, wait for the rest."""
        try:
            for state in self.states.values():
                unknown = sorted(d for d in state.deps if d not in self.states)
                if state.status == "waiting" and unknown:
                    message = "unknown reference(s): " + ", ".join(f"${i}" for i in unknown)
                    self.errors.append(PlanError(step=state.step.id, message=message))
                    self._fail(state, ErrorCode.parse_error, f"plan error: {message}")
            waiting = {i: s.deps for i, s in self.states.items() if s.status == "waiting"}
            for cycle in find_cycles(waiting):
                message = "dependency cycle: " + " -> ".join(map(str, cycle))
                self.errors.append(PlanError(message=message))
                for step_id in set(cycle):
                    if self.states[step_id].status == "waiting":
                        self._fail(self.states[step_id], ErrorCode.parse_error, f"plan error: {message}")
            self._dispatch_ready()
            while self._tasks:
                await asyncio.gather(*list(self._tasks))
        finally:
            self.cancel()  # cancelled while waiting: stop the steps in flight

    def cancel(self) -> None:
        """Stop the steps in flight (the plan's generation failed or the task was cancelled)."""
        for task in list(self._tasks):
            task.cancel()

    def ordered(self) -> list[StepState]:
        return list(self.states.values())

    def calls(self) -> list[ToolCall]:
        return [s.call for s in self.ordered() if s.call is not None]

    def observations(self) -> list[Observation]:
        return [s.observation for s in self.ordered() if s.observation is not None] + self.failed_raw


def _error_observation(step: PlanStep | None, code: ErrorCode, message: str) -> Observation:
    return Observation(
        call_id=new_id("step"),
        name=step.action if step else "(plan)",
        ok=False,
        error=code,
        message=message,
        text=f"error ({code.value}): {message}",
    )
