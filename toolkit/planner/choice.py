"""Tool-choice aids for weak (tiny, local) models, shared by the planners.

A grammar guarantees a parseable call, not a sensible one: a 135M-parameter model offered twenty
tools picks almost at random. Three cheap aids, each behind a planner option:

- `tool_k`: offer only the top-k tools that BM25 retrieval ranks for the task.
- `few_shot`: put the manifests' `examples` (task -> call) in the prompt.
- `rank_actions`: when the backend can score continuations (`capabilities.scoring`), pick the
  action by the model's log-likelihood of each candidate name, then generate only its arguments
  (the call is forced to that tool), instead of letting the model choose freely.
"""

from __future__ import annotations

import json
from typing import Any

from toolkit.models.base import supports_scoring
from toolkit.runtime.context import RunContext
from toolkit.types import LLMRequest, Message, ToolSpec

FINAL_ANSWER = "final_answer"  # the candidate that means "no tool: answer now"


def offered_tools(query: str, tools: list[ToolSpec], k: int | None) -> list[ToolSpec]:
    """The top-k tools for the query by BM25, or all of them when there are no more than k."""
    if not k or len(tools) <= k:
        return tools
    from toolkit.retrieval import ToolRetriever

    return ToolRetriever(tools).top_k(query, k)


def few_shot_block(tools: list[ToolSpec], limit: int = 6, per_tool: int = 2) -> str:
    """Examples from the tools' manifests, as `Task: ... / Call: {...}` pairs."""
    lines: list[str] = []
    for spec in tools:
        for example in spec.examples[:per_tool]:
            task = example.get("task") if isinstance(example, dict) else None
            if not task:
                continue
            call = {"name": spec.name, "arguments": example.get("arguments") or {}}
            lines.append(f"Task: {task}\nCall: {json.dumps(call, ensure_ascii=False)}")
    if not lines:
        return ""
    return "Examples of good tool calls:\n" + "\n\n".join(lines[:limit])


def can_rank(ctx: RunContext) -> bool:
    return supports_scoring(ctx.backend)


async def rank_actions(
    ctx: RunContext,
    messages: list[Message],
    tools: list[ToolSpec],
    *,
    allow_answer: bool = True,
    step: int | None = None,
    node: str | None = None,
    per_char: bool = False,
) -> list[tuple[str, float]]:
    """Candidate actions (tool names, and FINAL_ANSWER) ranked by the model's log-likelihood of
    the reply starting with a call of each, best first. The candidates are the opening of the
    reply in the common JSON call format, `{"name": "<action>"`; `per_char` divides each score
    by the name's length (a sum of log-probabilities favours short names). The ranking goes into
    the trace as a `plan` event."""
    names = [s.name for s in tools] + ([FINAL_ANSWER] if allow_answer else [])
    request = LLMRequest(messages=messages, tools=tools)
    scores = await ctx.backend.score(request, [f'{{"name": "{name}"' for name in names])  # type: ignore[attr-defined]
    values = [float(s) / (len(n) + 1 if per_char else 1) for n, s in zip(names, scores, strict=True)]
    ranked = sorted(zip(names, values, strict=True), key=lambda pair: -pair[1])
    ctx.emit(
        "plan",
        step=step,
        node=node,
        text=f"ranked {len(names)} actions by log-likelihood; chose {ranked[0][0]}",
        plan=[{"action": name, "score": round(score, 4)} for name, score in ranked],
    )
    return ranked


def forced_request(messages: list[Message], tools: list[ToolSpec], choice: str, **fields: Any) -> LLMRequest:
    """A request that makes the model call `choice` (only its arguments are generated), or
    answer without tools when `choice` is FINAL_ANSWER."""
    if choice == FINAL_ANSWER:
        return LLMRequest(messages=messages, tools=[], tool_choice="none", **fields)
    spec = next(s for s in tools if s.name == choice)
    return LLMRequest(messages=messages, tools=[spec], tool_choice=spec.name, parallel_tool_calls=False, **fields)
