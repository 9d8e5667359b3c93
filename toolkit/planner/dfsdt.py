"""DFSDT (ToolLLM's depth-first search-based decision tree): a depth-first search over
thought/action nodes that backtracks instead of pressing on down a failing path.

A node is a point in the conversation (the root: the task). Expanding a node asks the model for
the next action there; the call and its observation make a child node. The search backtracks
when a call fails (an error observation, with `backtrack_on_error`), when the model calls the
`give_up` pseudo-action (the whole branch is abandoned: back to the node's parent), or when a
call would go deeper than `max_depth`. Re-expanding a node lists the actions already tried there
and asks for a different one. A node is expanded at most `max_children` times; when the root has
none left, the search has failed. Every expansion is one model call and one planner step, so
`max_steps` (and `max_model_calls`, if lower) is the budget.

Trace: model calls carry `node` (the node expanded) and `parent`; calls and observations carry
the child's `node` and its `parent`; each backtrack is a `backtrack` event saying why.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from toolkit.planner.choice import FINAL_ANSWER, can_rank, few_shot_block, forced_request, offered_tools, rank_actions
from toolkit.planner.prompts import observation_message, system_message
from toolkit.runtime.context import MaxStepsReached, PlannerError, RunContext
from toolkit.types import LLMRequest, LLMResponse, Message, ToolCall, ToolSpec

GIVE_UP = "give_up"
GIVE_UP_SPEC = ToolSpec(
    name=GIVE_UP,
    description="Abandon the current line of attempts when it cannot lead to the answer; the search goes back and tries another way.",
    parameters={"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]},
)
SEARCH_NOTE = "If a line of attempts cannot succeed, call give_up with the reason, and another way will be tried."
DIVERSITY_NOTE = (
    "This is not the first attempt from this point. Actions already tried here, and what became of them:\n"
    "{tried}\nChoose an action different from all of these (or give the final answer if you already can)."
)


@dataclass
class Node:
    id: str
    parent: Node | None
    depth: int
    messages: list[Message]
    call: ToolCall | None = None
    tried: list[str] = field(default_factory=list)  # children tried from here, with their fate
    expansions: int = 0

    def note(self, call: ToolCall | None, fate: str) -> None:
        what = f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})" if call else "(no valid action)"
        self.tried.append(f"- {what}: {fate}")


class DfsdtPlanner:
    name = "dfsdt"

    def __init__(
        self,
        *,
        max_depth: int = 6,
        max_children: int = 3,
        max_model_calls: int | None = None,
        backtrack_on_error: bool = True,
        tool_k: int | None = None,
        few_shot: bool = False,
        rank_actions: bool = False,
    ):
        self.max_depth = max_depth
        self.max_children = max_children
        self.max_model_calls = max_model_calls
        self.backtrack_on_error = backtrack_on_error
        self.tool_k = tool_k
        self.few_shot = few_shot
        self.rank_actions = rank_actions

    async def run(self, ctx: RunContext) -> str:
        tools = offered_tools(ctx.task, ctx.tools, self.tool_k)
        extra = SEARCH_NOTE + ("\n\n" + few_shot_block(tools) if self.few_shot and few_shot_block(tools) else "")
        root = Node(
            id="0",
            parent=None,
            depth=0,
            messages=[system_message([*tools, GIVE_UP_SPEC], extra), Message(role="user", content=ctx.task)],
        )
        node, model_calls = root, 0
        while True:
            if self.max_model_calls is not None and model_calls >= self.max_model_calls:
                raise MaxStepsReached(f"dfsdt: no answer within {self.max_model_calls} model calls")
            step = ctx.new_step()
            started = time.perf_counter()
            node.expansions += 1
            response = await self._expand(ctx, node, tools, step.index)
            model_calls += 1
            calls = response.tool_calls
            if not calls and not response.parse_error:
                ctx.record(step, response.text, [], [], response.usage, started)
                return response.text
            if not calls:  # unparseable: a failed attempt at this node
                ctx.record(step, response.text, [], [], response.usage, started)
                node.note(None, f"the output could not be parsed ({response.parse_error})")
                node = self._after_failure(ctx, node, step.index, f"unparseable output at node {node.id}")
                continue
            call = calls[0]  # one action per node: a tree of single steps
            if call.name == GIVE_UP:
                ctx.record(step, response.text, [call], [], response.usage, started)
                reason = str(call.arguments.get("reason") or "no reason given")
                node = self._abandon(ctx, node, step.index, reason)
                continue
            child_id = f"{node.id}.{node.expansions - 1}"
            if node.depth + 1 > self.max_depth:
                ctx.record(step, response.text, [call], [], response.usage, started)
                node.note(call, f"not run: deeper than {self.max_depth} steps")
                ctx.emit(
                    "backtrack",
                    step=step.index,
                    node=child_id,
                    parent=node.id,
                    text=f"node {child_id} would exceed depth {self.max_depth}",
                )
                node = self._abandon(ctx, node, step.index, f"depth limit {self.max_depth} reached")
                continue
            obs = await ctx.execute_one(call, step=step.index, node=child_id, parent=node.id)
            ctx.record(step, response.text, [call], [obs], response.usage, started)
            if not obs.ok and self.backtrack_on_error:
                node.note(call, f"failed with {obs.text[:300]}")
                ctx.emit(
                    "backtrack",
                    step=step.index,
                    node=child_id,
                    parent=node.id,
                    text=f"{call.name} failed at node {child_id}: {obs.message or obs.text[:200]}",
                )
                node = self._after_failure(ctx, node, step.index, f"failure at node {child_id}")
                continue
            messages = [
                *node.messages,
                Message(role="assistant", content=response.text, tool_calls=[call]),
                observation_message(obs),
            ]
            node = Node(id=child_id, parent=node, depth=node.depth + 1, messages=messages, call=call)

    async def _expand(self, ctx: RunContext, node: Node, tools: list[ToolSpec], step: int) -> LLMResponse:
        messages = list(node.messages)
        if node.tried:
            messages.append(Message(role="user", content=DIVERSITY_NOTE.format(tried="\n".join(node.tried))))
        parent = node.parent.id if node.parent else None
        offered = [*tools, GIVE_UP_SPEC]
        if self.rank_actions and tools and can_rank(ctx):
            tried = {line.split("(", 1)[0][2:] for line in node.tried}
            candidates = [t for t in offered if t.name not in tried] or offered  # exact diversity
            ranked = await rank_actions(ctx, messages, candidates, step=step, node=node.id)
            choice = ranked[0][0]
            response = await ctx.generate(
                forced_request(messages, candidates, choice), step=step, node=node.id, parent=parent
            )
            if choice != FINAL_ANSWER and not response.tool_calls and not response.parse_error:
                response.parse_error = f"expected a call of {choice}, got text"
            return response
        request = LLMRequest(messages=messages, tools=offered, parallel_tool_calls=False)
        return await ctx.generate(request, step=step, node=node.id, parent=parent)

    def _after_failure(self, ctx: RunContext, node: Node, step: int, why: str) -> Node:
        """A child of `node` failed: try `node` again if it has expansions left, else go up."""
        if node.expansions < self.max_children:
            return node
        return self._abandon(
            ctx, node, step, f"{why}; no alternatives left at node {node.id} after {node.expansions} tries"
        )

    def _abandon(self, ctx: RunContext, node: Node, step: int, reason: str) -> Node:
        """Give up `node`'s whole branch: back to its parent (recursively, while parents are spent)."""
        parent = node.parent
        ctx.emit(
            "backtrack",
            step=step,
            node=node.id,
            parent=parent.id if parent else None,
            text=f"abandon node {node.id}: {reason}",
        )
        if parent is None:
            raise PlannerError(f"dfsdt: every branch failed ({reason})")
        parent.note(node.call, f"led to a dead end ({reason})")
        return self._after_failure(ctx, parent, step, f"branch {node.id} abandoned")
