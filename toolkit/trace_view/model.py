"""What the trace views draw, computed once from a task's events: model calls and tool calls as
time intervals, the plan as a graph, token totals.

Times: a `call` event is emitted when the call starts and its observation carries the call's
duration (an `observation` event may come later: a parallel batch reports when all are done), so
a call spans [call.t, call.t + duration]. A `model_call` event is emitted when the model returned,
with its total time: it spans [t - total_s, t].

The plan graph comes from `plan` events (the DAG planner's steps; one round per plan or replan).
A tree search (dfsdt: calls carry their `node` and `parent`) gets its search tree. A run without
either (ReAct, whose per-turn `plan` events just list the turn's calls) gets a graph of its calls:
each turn's calls depend on the previous turn's, calls of one turn (a parallel batch) side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from toolkit.types import TraceEvent, Usage

_REF = re.compile(r"\$\{?#?(\w+)\}?|#E(\w+)")  # $1, ${1}, $#1, #E1: references to earlier steps


@dataclass
class CallView:
    id: str
    name: str
    arguments: dict[str, Any]
    start: float
    end: float | None = None
    step: int | None = None
    node: str | None = None
    parent: str | None = None  # tree search (dfsdt): the node this call was made from
    ok: bool | None = None  # None: no observation (the task ended first)
    text: str = ""
    error: str | None = None
    attempts: int = 1
    truncated: bool = False
    lane: int = 0

    @property
    def duration(self) -> float:
        return max(0.0, (self.end if self.end is not None else self.start) - self.start)


@dataclass
class ModelCallView:
    start: float
    end: float
    step: int | None
    node: str | None
    usage: Usage
    text: str = ""
    lane: int = 0


@dataclass
class PlanNode:
    id: str  # unique in the view: `r{round}:{step id}`
    label: str
    detail: str
    deps: list[str] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)
    round: int = 0
    depth: int = 0
    row: int = 0


@dataclass
class TaskView:
    task_id: str
    task: str = ""
    status: str = ""
    answer: str | None = None
    error: str | None = None
    wall_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    calls: list[CallView] = field(default_factory=list)
    model_calls: list[ModelCallView] = field(default_factory=list)
    plan: list[PlanNode] = field(default_factory=list)
    plan_from_events: bool = False
    plan_kind: str = "calls by turn"  # what the graph shows: plan, search tree, calls by turn
    notes: list[tuple[float, str, str]] = field(default_factory=list)  # (t, kind, text): replan, backtrack, error
    events: list[TraceEvent] = field(default_factory=list)

    @property
    def lanes(self) -> int:
        return 1 + max((c.lane for c in self.calls), default=-1)


def build_view(task_id: str, events: list[TraceEvent]) -> TaskView:
    view = TaskView(task_id=task_id, events=events)
    calls: dict[str, CallView] = {}
    plan_events: list[tuple[int, int | None, list[dict[str, Any]]]] = []  # (position, step, steps)
    call_position: dict[str, int] = {}
    for position, e in enumerate(events):
        if e.kind == "task_start":
            view.task = e.text or ""
        elif e.kind == "answer":
            view.answer = e.text
        elif e.kind == "task_end":
            view.status, view.wall_s = e.text or "", e.t
            if e.usage is not None:
                view.usage = e.usage
        elif e.kind == "model_call":
            total = e.timings.total_s if e.timings else 0.0
            view.model_calls.append(
                ModelCallView(max(0.0, e.t - total), e.t, e.step, e.node, e.usage or Usage(), e.text or "")
            )
        elif e.kind == "plan" and e.plan:
            plan_events.append((position, e.step, e.plan))
        elif e.kind == "call" and e.call is not None:
            view_call = CallView(
                e.call.id, e.call.name, e.call.arguments, e.t, step=e.step, node=e.node, parent=e.parent
            )
            calls[e.call.id] = view_call
            call_position[e.call.id] = position
        elif e.kind == "observation" and e.observation is not None:
            o = e.observation
            c = calls.get(o.call_id)
            if c is None:  # an observation without its call event: place it by its duration
                c = calls[o.call_id] = CallView(
                    o.call_id, o.name, {}, max(0.0, e.t - o.duration_s), step=e.step, node=e.node
                )
            c.end = c.start + o.duration_s if o.duration_s else e.t
            c.ok, c.text, c.attempts, c.truncated = o.ok, o.text, o.attempts, o.truncated
            c.error = o.error.value if o.error is not None else None
        elif e.kind in ("replan", "backtrack", "error"):
            view.notes.append((e.t, e.kind, e.text or ""))
            if e.kind == "error":
                view.error = e.text
    if not view.usage.total_tokens:
        for m in view.model_calls:
            view.usage = view.usage + m.usage
    view.calls = sorted(calls.values(), key=lambda c: (c.start, c.id))
    if not view.wall_s:
        view.wall_s = max([e.t for e in events] + [c.end or c.start for c in view.calls] + [0.0])
    assign_lanes(view.calls)
    assign_lanes(view.model_calls)
    # only DAG plans make the graph: steps with their own ids. ReAct's per-turn `plan` events name
    # the turn's calls by their call ids, and action rankings have no ids at all
    rounds = [
        (pos, step, plan)
        for pos, step, plan in plan_events
        if all("id" in s for s in plan) and not all(str(s["id"]) in calls for s in plan)
    ]
    if rounds:
        call_round: dict[str, int] = {}
        steps_of_rounds = [step for _, step, _ in rounds]
        for c in view.calls:
            # a planner may emit its plan before or after running it (the DAG planner reports the
            # steps with their status afterwards): the plan of the call's own step wins, else the
            # latest plan before the call
            if c.step is not None and c.step in steps_of_rounds:
                call_round[c.id] = len(rounds) - steps_of_rounds[::-1].index(c.step)
            else:
                call_round[c.id] = sum(1 for pos, _, _ in rounds if pos < call_position.get(c.id, 0))
        view.plan, view.plan_from_events = plan_from_rounds([p for _, _, p in rounds], view.calls, call_round), True
    elif any(c.parent is not None and c.node is not None for c in view.calls):
        view.plan, view.plan_kind = plan_from_tree(view.calls), "search tree"
    else:
        view.plan = plan_from_steps(view.calls)
    layout(view.plan)
    return view


def assign_lanes(items: list[Any], eps: float = 1e-6) -> None:
    """Greedy interval colouring: an item goes to the first lane free at its start, so items that
    overlap in time always sit in different lanes."""
    lane_ends: list[float] = []
    for item in sorted(items, key=lambda i: i.start):
        end = item.end if item.end is not None else item.start
        for lane, lane_end in enumerate(lane_ends):
            if lane_end <= item.start + eps:
                item.lane, lane_ends[lane] = lane, max(end, item.start + eps)
                break
        else:
            item.lane = len(lane_ends)
            lane_ends.append(max(end, item.start + eps))


def _step_id(step: dict[str, Any], index: int) -> str:
    for key in ("id", "idx", "index", "step", "name"):
        value = step.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    return str(index + 1)


def _step_label(step: dict[str, Any]) -> str:
    for key in ("tool", "name", "action", "call"):
        value = step.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            return value["name"]
    return "step"


def _step_deps(step: dict[str, Any], ids: set[str], own: str) -> list[str]:
    for key in ("depends_on", "deps", "dependencies", "after", "parents"):
        value = step.get(key)
        if isinstance(value, list):
            return [str(v) for v in value if str(v) in ids and str(v) != own]
    args = step.get("arguments", step.get("args", step.get("input")))
    found = []
    for a, b in _REF.findall(str(args) if args is not None else ""):
        ref = a or b
        if ref in ids and ref != own and ref not in found:
            found.append(ref)
    return found


def plan_from_rounds(
    rounds: list[list[dict[str, Any]]], calls: list[CallView], call_round: dict[str, int]
) -> list[PlanNode]:
    nodes: list[PlanNode] = []
    for r, steps in enumerate(rounds, start=1):
        ids = [_step_id(s, i) for i, s in enumerate(steps)]
        id_set = set(ids)
        for step, sid in zip(steps, ids, strict=True):
            args = step.get("arguments", step.get("args"))
            detail = f"{_step_label(step)}({_short_json(args)})" if args is not None else _step_label(step)
            deps = [f"r{r}:{d}" for d in _step_deps(step, id_set, sid)]
            nodes.append(
                PlanNode(id=f"r{r}:{sid}", label=f"{sid}. {_step_label(step)}", detail=detail, deps=deps, round=r)
            )
    by_id = {n.id: n for n in nodes}
    for c in calls:
        if c.node is None:
            continue
        # a call belongs to its step's plan round, else to the latest round emitted before it
        node = by_id.get(f"r{max(1, call_round.get(c.id, 1))}:{c.node}") or next(
            (n for n in reversed(nodes) if n.id.endswith(f":{c.node}")), None
        )
        if node is not None:
            node.call_ids.append(c.id)
    return nodes


def plan_from_tree(calls: list[CallView]) -> list[PlanNode]:
    """A tree search's calls: each call is the node it made, under the node it was made from
    (the root, the task itself, is node `0` and made no call). Abandoned branches stay visible."""
    nodes: list[PlanNode] = []
    by_node: dict[str, PlanNode] = {}
    for c in calls:
        node_id = f"n:{c.node}"
        node = PlanNode(
            id=node_id, label=f"{c.node}. {c.name}", detail=f"{c.name}({_short_json(c.arguments)})", call_ids=[c.id]
        )
        if c.parent is not None and f"n:{c.parent}" in by_node:
            node.deps = [f"n:{c.parent}"]
        nodes.append(node)
        by_node[node_id] = node
    return nodes


def plan_from_steps(calls: list[CallView]) -> list[PlanNode]:
    """The calls of a run without a plan: each turn after the previous one."""
    by_step: dict[int, list[CallView]] = {}
    for i, c in enumerate(calls):
        by_step.setdefault(c.step if c.step is not None else i, []).append(c)
    nodes: list[PlanNode] = []
    previous: list[str] = []
    for step in sorted(by_step):
        current = []
        for c in by_step[step]:
            node = PlanNode(
                id=f"c:{c.id}",
                label=f"{step}. {c.name}",
                detail=f"{c.name}({_short_json(c.arguments)})",
                deps=list(previous),
                call_ids=[c.id],
            )
            nodes.append(node)
            current.append(node.id)
        previous = current
    return nodes


def layout(nodes: list[PlanNode]) -> None:
    """Depth = longest path from a root; row = order within a depth (rounds stacked)."""
    by_id = {n.id: n for n in nodes}
    memo: dict[str, int] = {}

    def depth(node: PlanNode, seen: frozenset[str] = frozenset()) -> int:
        if node.id in memo:
            return memo[node.id]
        if node.id in seen:  # a cycle in a malformed plan: cut it
            return 0
        parents = [by_id[d] for d in node.deps if d in by_id]
        memo[node.id] = 0 if not parents else 1 + max(depth(p, seen | {node.id}) for p in parents)
        return memo[node.id]

    rows: dict[tuple[int, int], int] = {}
    offset = 0
    for r in sorted({n.round for n in nodes}):
        members = [n for n in nodes if n.round == r]
        for n in members:
            n.depth = depth(n)
            n.row = offset + rows.get((r, n.depth), 0)
            rows[(r, n.depth)] = rows.get((r, n.depth), 0) + 1
        offset += max((rows.get((r, d), 0) for d in {m.depth for m in members}), default=0)


def _short_json(value: Any, limit: int = 60) -> str:
    import json

    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = str(value)
    if isinstance(value, dict) and text.startswith("{"):
        text = text[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"
