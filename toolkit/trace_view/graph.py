"""The plan as an inline SVG graph: steps laid out by depth (columns) and order (rows), an arrow
from each dependency to its dependent, coloured by how the step's calls ended."""

from __future__ import annotations

from html import escape

from toolkit.trace_view.model import PlanNode, TaskView

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 190, 38, 56, 14, 12


def _status(node: PlanNode, view: TaskView) -> str:
    outcomes = [c.ok for c in view.calls if c.id in node.call_ids]
    if not outcomes:
        return "pending"
    if any(o is False for o in outcomes):
        return "error"
    return "ok" if all(outcomes) else "pending"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_graph(view: TaskView) -> str:
    nodes = view.plan
    if not nodes:
        return '<p class="empty">No plan and no tool calls.</p>'
    width = PAD * 2 + (max(n.depth for n in nodes) + 1) * (NODE_W + COL_GAP) - COL_GAP
    height = PAD * 2 + (max(n.row for n in nodes) + 1) * (NODE_H + ROW_GAP) - ROW_GAP
    pos = {n.id: (PAD + n.depth * (NODE_W + COL_GAP), PAD + n.row * (NODE_H + ROW_GAP)) for n in nodes}
    parts = [
        f'<svg class="plan-graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="plan graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8a94a6"/></marker></defs>',
    ]
    for n in nodes:
        x2, y2 = pos[n.id]
        for dep in n.deps:
            if dep not in pos:
                continue
            x1, y1 = pos[dep]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
            mid = (sx + ex) / 2
            parts.append(
                f'<path class="edge" data-from="{escape(dep)}" data-to="{escape(n.id)}" '
                f'd="M {sx:.1f} {sy:.1f} C {mid:.1f} {sy:.1f}, {mid:.1f} {ey:.1f}, {ex - 2:.1f} {ey:.1f}" marker-end="url(#arrow)"/>'
            )
    for n in nodes:
        x, y = pos[n.id]
        status = _status(n, view)
        calls = " ".join(n.call_ids)
        parts.append(
            f'<g class="node {status}" data-node="{escape(n.id)}" data-calls="{escape(calls)}" data-depth="{n.depth}" '
            f'transform="translate({x},{y})"><title>{escape(n.detail)}</title>'
            f'<rect width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<text x="10" y="16" class="label">{escape(_clip(n.label, 26))}</text>'
            f'<text x="10" y="30" class="detail">{escape(_clip(n.detail, 27))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
