"""Dry runs: the agent plans its first move and the calls it would make are recorded, not run.

`Agent(..., dry_run=True)` / `toolkit run --dry-run`. Each call still goes through the executor,
which checks that it names an available action, and then runs nothing: no binding is invoked, no
approval is asked (the observation says when a real run would ask). The run ends as soon as the
planner would need a result it cannot have: when it opens its next step or asks the model again
after calls were recorded. So a dry run shows

- react: the calls of its first turn that calls (one call, or a parallel batch);
- dag: the whole first plan, each step a recorded call whose references to earlier results
  (`$1`, `$2.field`) stand as the plan wrote them;
- no call at all when the model answers without tools (its answer is then the result's answer).
"""

from __future__ import annotations

import json

from toolkit.types import Observation, ToolCall

NOT_EXECUTED = "dry run: {name} was not executed"


class DryRunDone(Exception):
    """Raised inside a dry run once calls are recorded and the planner wants to go on."""


def dry_run_observation(call: ToolCall, note: str = "") -> Observation:
    """What a dry run puts where a result would be: nothing ran, so nothing failed."""
    text = NOT_EXECUTED.format(name=call.name) + (f" ({note})" if note else "")
    return Observation(call_id=call.id, name=call.name, ok=True, content=None, text=text, message=note or None)


def describe_calls(calls: list[ToolCall]) -> str:
    """A dry run's answer: the calls it recorded, one a line, as the model wrote them."""
    lines = [f"- {c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in calls]
    return f"Dry run: {len(calls)} call(s) recorded, none executed:\n" + "\n".join(lines)
