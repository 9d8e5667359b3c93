"""The timeline of a task: model calls and tool calls as bars on a shared time axis, one lane per
concurrent call, so calls that ran in parallel sit side by side (same span, different lanes)."""

from __future__ import annotations

from html import escape

from toolkit.trace_view.model import TaskView

MIN_WIDTH_PCT = 0.6  # an instant call still gets a visible, clickable bar


def _ticks(total: float) -> list[float]:
    """Round-numbered ticks, at most about eight."""
    steps = [m * 10.0**e for e in range(-3, 5) for m in (1, 2, 5)]
    step = next((s for s in steps if total / s <= 8), steps[-1])
    return [round(i * step, 6) for i in range(int(total / step + 1e-9) + 1)]


def _pct(t: float, total: float) -> float:
    return 0.0 if total <= 0 else max(0.0, min(100.0, 100.0 * t / total))


def _bar(
    kind: str, status: str, start: float, end: float, total: float, lane: int, label: str, title: str, attrs: str
) -> str:
    left = _pct(start, total)
    width = max(MIN_WIDTH_PCT, _pct(end, total) - left)
    left = min(left, 100.0 - width)  # a short bar at the very end stays whole
    return (
        f'<div class="bar {kind} {status}" style="left:{left:.3f}%;width:{width:.3f}%" data-lane="{lane}" '
        f'data-start="{start:.6f}" data-end="{end:.6f}" {attrs} title="{escape(title)}"><span>{escape(label)}</span></div>'
    )


def render_timeline(view: TaskView) -> str:
    total = 1.02 * max(
        [view.wall_s] + [c.end or c.start for c in view.calls] + [m.end for m in view.model_calls] + [1e-3]
    )
    ticks = "".join(
        f'<div class="tick" style="left:{_pct(t, total):.3f}%"><span>{t:g}s</span></div>'
        for t in _ticks(total)
        if _pct(t, total) <= 94
    )
    rows = []
    model_lanes = 1 + max((m.lane for m in view.model_calls), default=-1)
    for lane in range(model_lanes):
        bars = "".join(
            _bar(
                "model",
                "ok",
                m.start,
                m.end,
                total,
                lane,
                f"model {m.usage.prompt_tokens}+{m.usage.completion_tokens}",
                f"model call, step {m.step}: {m.end - m.start:.3f}s, {m.usage.prompt_tokens} prompt + {m.usage.completion_tokens} completion tokens",
                f'data-step="{m.step if m.step is not None else ""}"',
            )
            for m in view.model_calls
            if m.lane == lane
        )
        rows.append(
            f'<div class="lane model-lane" data-lane="{lane}"><div class="lane-name">model</div><div class="track">{bars}</div></div>'
        )
    for lane in range(view.lanes):
        bars = "".join(
            _bar(
                "call",
                "pending" if c.ok is None else ("ok" if c.ok else "error"),
                c.start,
                c.end if c.end is not None else total,
                total,
                lane,
                c.name,
                f"{c.name}: {c.start:.3f}s → {(c.end if c.end is not None else total):.3f}s"
                + (f" ({c.error})" if c.error else ""),
                f'id="bar-{escape(c.id)}" data-call="{escape(c.id)}" data-step="{c.step if c.step is not None else ""}" data-node="{escape(c.node or "")}"',
            )
            for c in view.calls
            if c.lane == lane
        )
        rows.append(
            f'<div class="lane call-lane" data-lane="{lane}"><div class="lane-name">lane {lane + 1}</div><div class="track">{bars}</div></div>'
        )
    if not rows:
        rows.append('<p class="empty">Nothing ran.</p>')
    return (
        f'<div class="timeline" data-total="{total:.6f}">'
        f'<div class="axis"><div class="lane-name"></div><div class="track">{ticks}</div></div>'
        + "".join(rows)
        + "</div>"
    )
