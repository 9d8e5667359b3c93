"""ReAct: each turn the model makes one tool call (or a parallel batch of calls) or gives the final
answer; observations go back into the conversation.

- A batch of calls in one turn runs concurrently (up to `max_calls_per_turn`; the rest are
  dropped with a note to the model).
- A malformed output (`LLMResponse.parse_error`) becomes an observation the model can fix; it
  costs a step like any other turn.
- The step budget is the context's `max_steps`; with `answer_on_last_step` the last turn asks for
  the final answer (no tools) instead of running out mid-search.
- Each turn's choice goes into the trace as a `plan` event (the calls chosen, or "answer").
- Tool-choice aids for weak models (`tool_k`, `few_shot`, `rank_actions`): see choice.py. With
  `retrieve_per_step`, the top-k tools are retrieved again every turn, for the task and the
  latest observations (the tools then reach the model through the request, not the system text).
"""

from __future__ import annotations

import time

from toolkit.planner.choice import FINAL_ANSWER, can_rank, few_shot_block, forced_request, offered_tools, rank_actions
from toolkit.planner.prompts import observation_message, system_message, takes_tools_natively
from toolkit.runtime.context import RunContext
from toolkit.types import ErrorCode, LLMRequest, LLMResponse, Message, Observation, ToolCall, ToolSpec, new_id

LAST_STEP_NOTE = (
    "This is your last step: give the final answer now, from what you have learned, without calling a tool."
)


class ReactPlanner:
    name = "react"

    def __init__(
        self,
        parallel_calls: bool = True,
        *,
        max_calls_per_turn: int = 8,
        answer_on_last_step: bool = True,
        tool_k: int | None = None,
        retrieve_per_step: bool = False,
        few_shot: bool = False,
        rank_actions: bool = False,
    ):
        self.parallel_calls = parallel_calls
        self.max_calls_per_turn = max(1, max_calls_per_turn)
        self.answer_on_last_step = answer_on_last_step
        self.tool_k = tool_k
        self.retrieve_per_step = retrieve_per_step and bool(tool_k)
        self.few_shot = few_shot
        self.rank_actions = rank_actions

    def first_messages(self, ctx: RunContext, tools: list[ToolSpec]) -> list[Message]:
        extra = few_shot_block(tools) if self.few_shot else ""
        # a backend that takes tools natively shows them to the model in its own format (the
        # request carries them); listing them in the system text too would show them twice
        listed = [] if takes_tools_natively(ctx.backend) else tools
        return [system_message(listed, extra), Message(role="user", content=ctx.task)]

    async def run(self, ctx: RunContext) -> str:
        tools = offered_tools(ctx.task, ctx.tools, self.tool_k)
        messages = self.first_messages(ctx, [] if self.retrieve_per_step else tools)
        while True:
            step = ctx.new_step()
            if self.retrieve_per_step and ctx.steps[:-1]:
                latest = " ".join(o.text[:500] for o in ctx.steps[-2].observations)
                tools = offered_tools(f"{ctx.task} {latest}", ctx.tools, self.tool_k)
            started = time.perf_counter()
            last = self.answer_on_last_step and len(ctx.steps) == ctx.max_steps
            response = await self._decide(ctx, messages, tools, step.index, last)
            calls = response.tool_calls
            if response.parse_error:
                # a malformed output becomes an observation the model can fix
                note = self._parse_error_observation(ctx, response, step.index)
                messages.append(Message(role="assistant", content=response.text, tool_calls=calls))
                observations = await ctx.execute(calls, step=step.index) if calls else []
                messages.extend(observation_message(o) for o in observations)
                messages.append(Message(role="user", content=note.text))
                ctx.record(step, response.text, calls, [*observations, note], response.usage, started)
                continue
            if not calls:
                ctx.emit("plan", step=step.index, text="react: final answer", plan=[])
                ctx.record(step, response.text, [], [], response.usage, started)
                return response.text
            calls, dropped = self._limit(calls)
            ctx.emit(
                "plan",
                step=step.index,
                text=f"react: {len(calls)} call(s) this turn"
                + (" in parallel" if len(calls) > 1 else "")
                + (f"; {dropped} dropped over the per-turn limit" if dropped else ""),
                plan=[{"id": c.id, "action": c.name, "arguments": c.arguments} for c in calls],
            )
            messages.append(Message(role="assistant", content=response.text, tool_calls=calls))
            observations = await ctx.execute(calls, step=step.index)
            messages.extend(observation_message(o) for o in observations)
            if dropped:
                messages.append(
                    Message(
                        role="user",
                        content=f"Only the first {len(calls)} calls ran; {dropped} more were dropped. Call them again if still needed.",
                    )
                )
            ctx.record(step, response.text, calls, observations, response.usage, started)

    async def _decide(
        self, ctx: RunContext, messages: list[Message], tools: list[ToolSpec], step: int, last: bool
    ) -> LLMResponse:
        if last:
            return await ctx.generate(
                LLMRequest(
                    messages=[*messages, Message(role="user", content=LAST_STEP_NOTE)], tools=tools, tool_choice="none"
                ),
                step=step,
            )
        if self.rank_actions and tools and can_rank(ctx):
            ranked = await rank_actions(ctx, messages, tools, step=step)
            choice = ranked[0][0]
            response = await ctx.generate(forced_request(messages, tools, choice), step=step)
            if choice != FINAL_ANSWER and not response.tool_calls and not response.parse_error:
                response.parse_error = f"expected a call of {choice}, got text"
            return response
        return await ctx.generate(
            LLMRequest(messages=messages, tools=tools, parallel_tool_calls=self.parallel_calls), step=step
        )

    def _limit(self, calls: list[ToolCall]) -> tuple[list[ToolCall], int]:
        limit = self.max_calls_per_turn if self.parallel_calls else 1
        return calls[:limit], max(0, len(calls) - limit)

    def _parse_error_observation(self, ctx: RunContext, response: LLMResponse, step: int) -> Observation:
        text = (
            f"Your last reply could not be parsed: {response.parse_error}. "
            "Reply with a valid tool call (a known tool name and a JSON object of arguments) or with the final answer."
        )
        obs = Observation(
            call_id=new_id("parse"),
            name="(model output)",
            ok=False,
            error=ErrorCode.parse_error,
            message=response.parse_error,
            text=text,
        )
        ctx.emit("observation", step=step, observation=obs)
        return obs
