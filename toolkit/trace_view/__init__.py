"""Trace views: a tree in the terminal (`tree.py`) and a self-contained HTML page (`html.py`:
plan graph from `graph.py`, timeline from `timeline.py`), both drawn from `model.build_view`."""

from toolkit.trace_view.html import render_html, write_html
from toolkit.trace_view.model import TaskView, build_view
from toolkit.trace_view.tree import render_tree

__all__ = ["TaskView", "build_view", "render_html", "render_tree", "write_html"]
