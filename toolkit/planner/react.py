"""ReAct: each turn the model makes one tool call (or a parallel batch) or gives the final answer;
observations go back into the conversation."""

from __future__ import annotations

import time

from toolkit.planner.prompts import observation_message, system_message
from toolkit.runtime.context import RunContext
from toolkit.types import LLMRequest, Message


class ReactPlanner:
    name = "react"

    def __init__(self, parallel_calls: bool = True):
        self.parallel_calls = parallel_calls

    async def run(self, ctx: RunContext) -> str:
        messages = [system_message(ctx.tools), Message(role="user", content=ctx.task)]
        while True:
            step = ctx.new_step()
            started = time.perf_counter()
            response = await ctx.generate(
                LLMRequest(messages=messages, tools=ctx.tools, parallel_tool_calls=self.parallel_calls),
                step=step.index,
            )
            if not response.tool_calls:
                ctx.record(step, response.text, [], [], response.usage, started)
                if response.parse_error:
                    # a malformed output becomes an observation the model can fix
                    messages.append(Message(role="assistant", content=response.text))
                    messages.append(Message(role="user", content=f"Your last reply could not be parsed: {response.parse_error}. Reply with a valid tool call or a final answer."))
                    continue
                return response.text
            calls = response.tool_calls if self.parallel_calls else response.tool_calls[:1]
            messages.append(Message(role="assistant", content=response.text, tool_calls=calls))
            observations = await ctx.execute(calls, step=step.index)
            messages.extend(observation_message(o) for o in observations)
            ctx.record(step, response.text, calls, observations, response.usage, started)
