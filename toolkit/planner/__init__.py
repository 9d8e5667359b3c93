"""Planners: `react`, `dag`, `dfsdt`, `webqa`. `make_planner(name)` builds one by name."""

from __future__ import annotations

import importlib
from typing import Any

from toolkit.planner.base import Planner

# name -> "module:Class"; planners import lazily so one broken planner never blocks the others
PLANNERS: dict[str, str] = {
    "react": "toolkit.planner.react:ReactPlanner",
    "dag": "toolkit.planner.dag:DagPlanner",
    "dfsdt": "toolkit.planner.dfsdt:DfsdtPlanner",
    "webqa": "toolkit.planner.webqa:WebQAPlanner",
}


def make_planner(name: str | Planner, **options: Any) -> Planner:
    if not isinstance(name, str):
        return name
    target = PLANNERS.get(name)
    if target is None:
        raise ValueError(f"unknown planner {name!r}; choose one of {', '.join(PLANNERS)}")
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)(**options)


__all__ = ["Planner", "PLANNERS", "make_planner"]
