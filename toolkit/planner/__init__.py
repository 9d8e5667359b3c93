"""Planners: `react`, `dag`, `dfsdt`, `webqa`. `make_planner(name)` builds one by name."""

from __future__ import annotations

import importlib
import inspect
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
    cls = getattr(importlib.import_module(module_name), cls_name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"planner {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(accepted) or 'none'}"
        )
    return cls(**options)


__all__ = ["Planner", "PLANNERS", "make_planner"]
