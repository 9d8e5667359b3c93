"""DAG plan-and-execute (LLMCompiler's shape): the model emits a plan of steps whose arguments may
reference earlier results; each step is dispatched as soon as its dependencies are done (while the
plan is still streaming, when the backend can stream); a joiner then answers or replans.

One conversation carries the whole task: system (tools, plan format) / user (task) / assistant
(plan JSON) / user (results) / assistant (decision JSON) / user (replan request) / ... so a local
backend reuses the KV cache of the shared prefix from one model call to the next.

Modules: plan.py (Plan/PlanStep, schema, validation, references), parse.py (incremental parsing),
scheduler.py (dispatch), joiner.py (answer or replan).
"""

from __future__ import annotations

import json
import time

from toolkit.models.base import supports_streaming
from toolkit.planner.choice import few_shot_block, offered_tools
from toolkit.planner.dag.joiner import join
from toolkit.planner.dag.parse import PlanStreamParser
from toolkit.planner.dag.plan import Plan, PlanError, PlanStep, plan_json_schema, validate_plan
from toolkit.planner.dag.scheduler import StepScheduler
from toolkit.planner.prompts import system_message
from toolkit.runtime.context import RunContext
from toolkit.types import Constraint, LLMRequest, LLMResponse, Message, Sampling, Timings, ToolCall, Usage

PLAN_INSTRUCTIONS = """Solve the task with a plan: a JSON object {"steps": [...]}.
Each step is {"id": N, "action": "<tool name>", "arguments": {...}, "depends_on": [ids]}.
Steps run in parallel unless one depends on another. To use an earlier step's result, write "$N"
(the whole result), "$N.field" (a field of it) or "${N}" inside a longer string, and list N in
depends_on. Use only the tools listed above. If no tool is needed, give an empty steps list.
Example: {"steps": [
 {"id": 1, "action": "lookup", "arguments": {"key": "apples"}, "depends_on": []},
 {"id": 2, "action": "lookup", "arguments": {"key": "pears"}, "depends_on": []},
 {"id": 3, "action": "add", "arguments": {"a": "$1", "b": "$2"}, "depends_on": [1, 2]}]}"""

REPLAN_PROMPT = (
    "Make a new plan for what is still missing: {reason}\n"
    "The results above stay in this conversation, but the new plan cannot reference them with $: copy "
    "the values you need. Step ids start again at 1."
)


class DagPlanner:
    name = "dag"

    def __init__(
        self,
        *,
        max_replans: int = 2,
        max_plan_steps: int = 12,
        stream: bool = True,
        typed_arguments: bool = True,
        plan_max_tokens: int = 1024,
        join_max_tokens: int = 384,
        plan_thought: bool = False,
        max_step_chars: int = 600,
        tool_k: int | None = None,
        few_shot: bool = False,
    ):
        self.max_replans = max_replans
        self.max_plan_steps = max_plan_steps
        self.stream = stream
        self.typed_arguments = typed_arguments
        self.plan_max_tokens = plan_max_tokens
        self.join_max_tokens = join_max_tokens
        self.tool_k = tool_k
        self.few_shot = few_shot
        self.plan_thought = plan_thought
        self.max_step_chars = max_step_chars  # a streamed step longer than this is a runaway: stop

    async def run(self, ctx: RunContext) -> str:
        tools = offered_tools(ctx.task, ctx.tools, self.tool_k)
        names = {t.name for t in tools}
        schema = plan_json_schema(tools, self.max_plan_steps, self.typed_arguments, self.plan_thought)
        instructions = PLAN_INSTRUCTIONS + (
            "\n\n" + few_shot_block(tools) if self.few_shot and few_shot_block(tools) else ""
        )
        messages = [system_message(tools, instructions), Message(role="user", content=ctx.task)]
        replans = 0
        while True:
            step = ctx.new_step()
            started, usage_before = time.perf_counter(), ctx.usage
            scheduler = StepScheduler(ctx, names, step.index, self.max_plan_steps)
            request = LLMRequest(
                messages=list(messages),
                tool_choice="none",
                constraint=Constraint(kind="json_schema", json_schema=schema),
                sampling=Sampling(max_tokens=self.plan_max_tokens),
            )
            try:
                thought, text = await self._plan(ctx, request, scheduler, step.index)
            except BaseException:
                scheduler.cancel()  # the backend failed mid-plan: no step outlives the task
                raise
            messages.append(Message(role="assistant", content=text))
            await scheduler.finish()
            ctx.emit(
                "plan",
                step=step.index,
                text=f"dag plan: {len(scheduler.states)} step(s)"
                + ("; errors: " + "; ".join(map(str, scheduler.errors)) if scheduler.errors else ""),
                plan=[{**s.step.model_dump(), "status": s.status} for s in scheduler.ordered()],
            )
            can_replan = replans < self.max_replans
            decision = await join(
                ctx, messages, scheduler, can_replan=can_replan, step=step.index, max_tokens=self.join_max_tokens
            )
            ctx.record(
                step, thought, scheduler.calls(), scheduler.observations(), _minus(ctx.usage, usage_before), started
            )
            if decision.action == "answer":
                return decision.content
            replans += 1
            ctx.emit("replan", step=step.index, text=f"replan {replans}/{self.max_replans}: {decision.content}")
            messages.append(Message(role="user", content=REPLAN_PROMPT.format(reason=decision.content)))

    async def _plan(self, ctx: RunContext, request: LLMRequest, scheduler: StepScheduler, step: int) -> tuple[str, str]:
        """Generate the plan, handing each complete step to the scheduler as soon as it is parsed."""
        parser = PlanStreamParser()
        if self.stream and supports_streaming(ctx.backend):
            text, calls = await self._stream(ctx, request, parser, scheduler, step)
        else:
            response = await ctx.generate(request, step=step)
            text, calls = response.text, response.tool_calls
            for raw in parser.feed(text):
                scheduler.add(raw)
        if not text.strip() and calls:
            text = _calls_as_plan(calls)  # a backend that answered with native calls: independent steps
            for raw in parser.feed(text):
                scheduler.add(raw)
        if scheduler.repeated or scheduler.cut_off:
            # the model was cut off (a loop, or a step that never closes): the plan is the steps
            # accepted so far, as valid JSON (it goes back into the conversation)
            steps = [s.step.model_dump() for s in scheduler.ordered() if s.step.id not in scheduler.dropped]
            return "", json.dumps({"steps": steps})
        thought, raws, error = parser.finish()
        for raw in raws[len(parser.raw_steps) :]:  # steps only the whole-text parse found
            scheduler.add(raw)
        if error is not None:
            scheduler.errors.append(error)
        return thought, text

    async def _stream(
        self, ctx: RunContext, request: LLMRequest, parser: PlanStreamParser, scheduler: StepScheduler, step: int
    ) -> tuple[str, list[ToolCall]]:
        started = time.perf_counter()
        chunks: list[str] = []
        final: LLMResponse | None = None
        stream = ctx.backend.stream(request)  # type: ignore[attr-defined]
        try:
            async for item in stream:
                if isinstance(item, LLMResponse):
                    final = item
                    continue
                chunks.append(item)
                for raw in parser.feed(item):
                    scheduler.add(raw)
                if scheduler.repeated:  # the plan loops: stop decoding it
                    ctx.emit("plan", step=step, text="stopped the plan: a step repeated an earlier one")
                    break
                if parser.open_chars > self.max_step_chars:  # e.g. a string the model never closes
                    message = f"step #{len(parser.raw_steps) + 1} ran past {self.max_step_chars} characters without closing; the plan was cut off before it"
                    scheduler.errors.append(PlanError(message=message))
                    scheduler.cut_off = True
                    ctx.emit("plan", step=step, text=f"stopped the plan: {message}")
                    break
        finally:
            await stream.aclose()  # a stopped stream cancels the backend's decoding
        text = ctx.clean_reply("".join(chunks) if chunks else (final.text if final else ""))
        usage = final.usage if final else Usage(completion_tokens=len(text) // 4)  # stopped early: an estimate
        timings = final.timings if final else Timings(total_s=time.perf_counter() - started)
        ctx.record_model_call(text, usage, timings, step=step)
        return text, (final.tool_calls if final else [])


def _calls_as_plan(calls: list[ToolCall]) -> str:
    steps = [{"id": i + 1, "action": c.name, "arguments": c.arguments, "depends_on": []} for i, c in enumerate(calls)]
    return json.dumps({"thought": "", "steps": steps})


def _minus(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens - b.prompt_tokens,
        completion_tokens=a.completion_tokens - b.completion_tokens,
        cached_tokens=a.cached_tokens - b.cached_tokens,
    )


__all__ = [
    "DagPlanner",
    "Plan",
    "PlanStep",
    "PlanError",
    "plan_json_schema",
    "validate_plan",
    "PlanStreamParser",
    "StepScheduler",
]
