"""A trace as one self-contained HTML page (inline CSS and JS, no external assets): per task, a
summary, the plan as a graph, the timeline of calls, each call's arguments and observation
(expandable), and token use per model call.

Everything from the trace is HTML-escaped: tool output is untrusted data, in a page as in a prompt.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from toolkit.trace_view.graph import render_graph
from toolkit.trace_view.model import TaskView, build_view
from toolkit.trace_view.timeline import render_timeline
from toolkit.types import TraceEvent

CSS = """
:root{--ok:#2f9e44;--err:#e03131;--pend:#868e96;--model:#4c6ef5;--bg:#f8f9fa;--line:#dee2e6;--ink:#212529}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:var(--ink);background:#fff}
header.page{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--bg)}header.page h1{font-size:18px;margin:0}
section.task{padding:8px 24px 28px;border-bottom:4px solid var(--line)}h2{font-size:17px;margin:16px 0 6px}h3{font-size:15px;margin:22px 0 8px}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:6px 12px}
.card b{display:block;font-size:16px}.status-ok{color:var(--ok)}.status-error,.status-max_steps,.status-cancelled{color:var(--err)}
.answer{white-space:pre-wrap;background:#f3f9f4;border-left:4px solid var(--ok);padding:8px 12px;border-radius:4px}
.graph-box{overflow:auto;border:1px solid var(--line);border-radius:8px;background:#fff;padding:4px}
svg .edge{fill:none;stroke:#8a94a6;stroke-width:1.5}svg .node rect{fill:#fff;stroke:var(--pend);stroke-width:1.5}
svg .node.ok rect{stroke:var(--ok);fill:#ebfbee}svg .node.error rect{stroke:var(--err);fill:#fff5f5}svg .node{cursor:pointer}
svg .node text.label{font:600 12px system-ui,sans-serif;fill:var(--ink)}svg .node text.detail{font:11px ui-monospace,monospace;fill:#495057}
svg .node.hl rect{stroke-width:3}
.timeline{border:1px solid var(--line);border-radius:8px;padding:6px 10px 10px;background:#fff}
.lane,.axis{display:flex;align-items:center;height:26px}.axis{height:22px;border-bottom:1px solid var(--line);margin-bottom:4px}
.lane-name{width:72px;flex:none;font-size:11px;color:#868e96}.track{position:relative;flex:1;height:100%}
.tick{position:absolute;top:0;height:100%;border-left:1px dashed var(--line)}.tick span{font-size:10px;color:#868e96;padding-left:3px}
.bar{position:absolute;top:3px;height:20px;border-radius:4px;color:#fff;font-size:11px;overflow:hidden;white-space:nowrap;cursor:pointer;padding:2px 5px}
.bar.call.ok{background:var(--ok)}.bar.call.error{background:var(--err)}.bar.call.pending{background:var(--pend)}.bar.model{background:var(--model);opacity:.85}
.bar.hl{outline:3px solid #fab005}
details.call{border:1px solid var(--line);border-radius:6px;margin:6px 0;background:#fff}details.call[open]{background:var(--bg)}
details.call summary{cursor:pointer;padding:6px 10px;font-family:ui-monospace,monospace;font-size:13px}details.call.hl{outline:3px solid #fab005}
details.call .body{padding:0 12px 8px}pre{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid var(--line);border-radius:4px;padding:8px;max-height:360px;overflow:auto;font-size:12px}
.tag{display:inline-block;border-radius:10px;padding:0 8px;font-size:11px;color:#fff;margin-left:6px}.tag.ok{background:var(--ok)}.tag.error{background:var(--err)}.tag.pending{background:var(--pend)}
table.tokens{border-collapse:collapse;font-size:13px}table.tokens td,table.tokens th{border:1px solid var(--line);padding:3px 10px;text-align:right}
table.tokens th{background:var(--bg)}table.tokens tr.total td{font-weight:600}.note{color:var(--err)}.empty{color:#868e96}
"""

JS = """
function focusCall(id){
  document.querySelectorAll('.hl').forEach(function(e){e.classList.remove('hl')});
  var d=document.getElementById('call-'+id); if(!d) return;
  d.open=true; d.classList.add('hl'); d.scrollIntoView({block:'center'});
  var b=document.getElementById('bar-'+id); if(b) b.classList.add('hl');
  document.querySelectorAll('svg .node').forEach(function(n){
    if((n.getAttribute('data-calls')||'').split(' ').indexOf(id)>=0) n.classList.add('hl')});
}
document.addEventListener('click',function(ev){
  var bar=ev.target.closest('.bar.call'); if(bar){focusCall(bar.getAttribute('data-call'));return}
  var node=ev.target.closest('svg .node'); if(node){var ids=(node.getAttribute('data-calls')||'').split(' ').filter(Boolean); if(ids.length) focusCall(ids[0])}
});
"""


def _json(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except (TypeError, ValueError):
        return str(value)


def _summary(view: TaskView) -> str:
    status = view.status or ("error" if view.error else "?")
    u = view.usage
    cards = [
        ("status", f'<span class="status-{escape(status)}">{escape(status)}</span>'),
        ("wall time", f"{view.wall_s:.2f} s"),
        ("tool calls", str(len(view.calls))),
        ("model calls", str(len(view.model_calls))),
        ("parallel lanes", str(view.lanes)),
        ("tokens", f"{u.prompt_tokens} + {u.completion_tokens}"),
    ]
    html = '<div class="summary">' + "".join(f'<div class="card">{k}<b>{v}</b></div>' for k, v in cards) + "</div>"
    if view.answer is not None:
        html += f'<h3>Answer</h3><div class="answer">{escape(view.answer)}</div>'
    for t, kind, text in view.notes:
        html += f'<p class="note">{escape(kind)} at {t:.2f}s: {escape(text)}</p>'
    return html


def _calls(view: TaskView) -> str:
    if not view.calls:
        return '<p class="empty">No tool calls.</p>'
    out = []
    for c in view.calls:
        status = "pending" if c.ok is None else ("ok" if c.ok else "error")
        tag = escape(c.error) if c.error else status
        when = f"@{c.start:.3f}s, {c.duration:.3f}s" if c.end is not None else f"@{c.start:.3f}s, no result"
        where = f" · step {c.step}" if c.step is not None else ""
        where += f" · node {escape(c.node)}" if c.node else ""
        extra = (f" · {c.attempts} attempts" if c.attempts > 1 else "") + (" · truncated" if c.truncated else "")
        out.append(
            f'<details class="call" id="call-{escape(c.id)}" data-call="{escape(c.id)}"><summary><b>{escape(c.name)}</b> '
            f'<span class="tag {status}">{tag}</span> {when}{where}{extra}</summary><div class="body">'
            f'<h4>arguments</h4><pre class="arguments">{escape(_json(c.arguments))}</pre>'
            f'<h4>observation</h4><pre class="observation">{escape(c.text) if c.ok is not None else "(none)"}</pre></div></details>'
        )
    return "".join(out)


def _tokens(view: TaskView) -> str:
    if not view.model_calls:
        return '<p class="empty">No model calls.</p>'
    rows = []
    for i, m in enumerate(view.model_calls, start=1):
        where = str(m.step) if m.step is not None else escape(m.node or "")
        rows.append(
            f"<tr><td>{i}</td><td>{where}</td><td>{m.start:.3f}</td><td>{m.end - m.start:.3f}</td>"
            f"<td>{m.usage.prompt_tokens}</td><td>{m.usage.completion_tokens}</td><td>{m.usage.cached_tokens}</td></tr>"
        )
    total = sum((m.usage for m in view.model_calls), start=type(view.usage)())
    rows.append(
        f'<tr class="total"><td colspan="4">total</td><td>{total.prompt_tokens}</td><td>{total.completion_tokens}</td><td>{total.cached_tokens}</td></tr>'
    )
    head = "<tr><th>#</th><th>step</th><th>start (s)</th><th>time (s)</th><th>prompt</th><th>completion</th><th>cached</th></tr>"
    return f'<table class="tokens">{head}{"".join(rows)}</table>'


def render_task(view: TaskView) -> str:
    graph_title = "Plan" if view.plan_from_events else view.plan_kind.capitalize()
    return (
        f'<section class="task" id="task-{escape(view.task_id)}" data-task="{escape(view.task_id)}">'
        f"<h2>{escape(view.task or view.task_id)}</h2>{_summary(view)}"
        f'<h3>{graph_title}</h3><div class="graph-box">{render_graph(view)}</div>'
        f"<h3>Timeline</h3>{render_timeline(view)}"
        f'<h3>Calls</h3><div class="calls">{_calls(view)}</div>'
        f'<h3>Tokens</h3><div class="token-use">{_tokens(view)}</div></section>'
    )


def render_html(traces: dict[str, list[TraceEvent]], title: str = "toolkit trace") -> str:
    views = [build_view(task_id, events) for task_id, events in traces.items()]
    body = "".join(render_task(v) for v in views) or '<p class="empty">The trace holds no task.</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f'<style>{CSS}</style></head><body><header class="page"><h1>{escape(title)}</h1>'
        f"<div>{len(views)} task(s)</div></header>{body}<script>{JS}</script></body></html>"
    )


def write_html(traces: dict[str, list[TraceEvent]], path: str | Path, title: str | None = None) -> Path:
    out = Path(path)
    out.write_text(render_html(traces, title or "toolkit trace"), encoding="utf-8")
    return out
