"""A trace as a tree in the terminal: task → plan / steps → model calls and tool calls →
observations, with start times, durations and tokens."""

from __future__ import annotations

import json

from rich.markup import escape
from rich.tree import Tree

from toolkit.trace_view.model import CallView, TaskView


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_style(status: str) -> str:
    return "green" if status == "ok" else "red"


def _call_label(c: CallView, width: int) -> str:
    args = _short(json.dumps(c.arguments, ensure_ascii=False, default=str), width)
    end = f"{c.duration:.2f}s" if c.end is not None else "no result"
    retry = f", {c.attempts} attempts" if c.attempts > 1 else ""
    return f"[yellow]call[/] [bold]{escape(c.name)}[/]({escape(args)}) [dim]@{c.start:.2f}s, {end}{retry}[/]"


def _observation_label(c: CallView, width: int) -> str:
    if c.ok is None:
        return "[red]no observation[/] (the task ended first)"
    if c.ok:
        cut = " [dim](truncated)[/]" if c.truncated else ""
        return f"[green]ok[/] {escape(_short(c.text, width))}{cut}"
    return f"[red]{escape(c.error or 'error')}[/] {escape(_short(c.text, width))}"


def _add_call(parent: Tree, c: CallView, width: int) -> None:
    node = parent.add(_call_label(c, width // 2))
    node.add(_observation_label(c, width))


def render_tree(view: TaskView, width: int = 120) -> Tree:
    status = view.status or ("error" if view.error else "?")
    u = view.usage
    root = Tree(
        f"[bold]task[/] {escape(_short(view.task, width))} [dim]({view.task_id})[/]\n"
        f"[{_status_style(status)}]{escape(status)}[/] in {view.wall_s:.2f}s · "
        f"{u.prompt_tokens} prompt + {u.completion_tokens} completion tokens · {len(view.calls)} tool call(s)"
    )
    calls_by_id = {c.id: c for c in view.calls}
    placed: set[str] = set()
    if view.plan_from_events:
        plan_branch = root.add(f"[magenta]plan[/] {len(view.plan)} step(s)")
        for node in view.plan:
            deps = ", ".join(d.split(":", 1)[1] for d in node.deps)
            round_tag = f"[dim]round {node.round}[/] " if max(n.round for n in view.plan) > 1 else ""
            branch = plan_branch.add(
                f"{round_tag}[magenta]{escape(node.label)}[/] {escape(_short(node.detail, width // 2))}"
                + (f" [dim]after {escape(deps)}[/]" if deps else "")
            )
            for call_id in node.call_ids:
                if call_id in calls_by_id:
                    _add_call(branch, calls_by_id[call_id], width)
                    placed.add(call_id)
    steps = sorted(
        {m.step for m in view.model_calls if m.step is not None}
        | {c.step for c in view.calls if c.step is not None and c.id not in placed}
    )
    for step in steps:
        models = [m for m in view.model_calls if m.step == step]
        tokens = sum(m.usage.total_tokens for m in models)
        branch = root.add(f"[cyan]step {step}[/] [dim]{tokens} tokens[/]")
        for m in models:
            said = f" {escape(_short(m.text, width // 2))}" if m.text else ""
            branch.add(
                f"[cyan]model[/] [dim]@{m.start:.2f}s, {m.end - m.start:.2f}s, {m.usage.prompt_tokens}+{m.usage.completion_tokens} tok[/]{said}"
            )
        for c in view.calls:
            if c.step == step and c.id not in placed:
                _add_call(branch, c, width)
                placed.add(c.id)
    unstepped_models = [m for m in view.model_calls if m.step is None]
    for m in unstepped_models:
        where = f" [dim]({escape(m.node)})[/]" if m.node else ""
        said = f" {escape(_short(m.text, width // 2))}" if m.text else ""
        root.add(
            f"[cyan]model[/]{where} [dim]@{m.start:.2f}s, {m.end - m.start:.2f}s, {m.usage.prompt_tokens}+{m.usage.completion_tokens} tok[/]{said}"
        )
    for c in view.calls:
        if c.id not in placed:
            _add_call(root, c, width)
    for t, kind, text in view.notes:
        root.add(f"[red]{kind}[/] [dim]@{t:.2f}s[/] {escape(_short(text, width))}")
    if view.answer is not None:
        root.add(f"[bold green]answer[/] {escape(_short(view.answer, width * 3))}")
    return root
