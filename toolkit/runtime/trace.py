"""Traces: the events of one task, recorded as they happen, written as JSONL.

A trace file holds one JSON object per line: TraceEvent dumps, each with a `task_id` added, so one
file can hold the traces of many tasks (a batch) and still be split back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from toolkit.runtime.secrets import redact_data, redact_model
from toolkit.types import TaskResult, TraceEvent

EventSink = Callable[[TraceEvent], None]


class TraceRecorder:
    def __init__(self, sink: EventSink | None = None, redact: Callable[[str], str] | None = None):
        self.started = time.perf_counter()
        self.events: list[TraceEvent] = []
        self.sink = sink
        self.redact = redact

    def emit(self, kind: str, **fields: Any) -> TraceEvent:
        # None is every optional field's default: leaving it out halves the model's validation work
        fields = {k: v for k, v in fields.items() if v is not None}
        if self.redact:  # a falsy Redactor knows no secret: nothing to do, at no cost per event
            fields = self._redacted(fields)
        # whole microseconds; int() rather than round(x, 6), which costs 7x as much (string-based)
        t = int((time.perf_counter() - self.started) * 1e6) / 1e6
        event = TraceEvent(kind=kind, t=t, **fields)
        self.events.append(event)
        if self.sink is not None:
            self.sink(event)
        return event

    def _redacted(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Every string an event carries, not only its text: a call's arguments, a plan's steps,
        an observation (the live view and every trace file show them)."""
        redact = self.redact
        assert redact is not None
        out: dict[str, Any] = {}
        for key, value in fields.items():
            if isinstance(value, str):
                out[key] = redact(value)
            elif isinstance(value, BaseModel):
                out[key] = redact_model(redact, value)
            elif isinstance(value, (dict, list)):
                out[key] = redact_data(redact, value)
            else:
                out[key] = value
        return out


def write_trace(result: TaskResult, path: str | Path, append: bool = False) -> None:
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for event in result.trace:
            f.write(json.dumps({"task_id": result.task_id, **event.model_dump(mode="json", exclude_none=True)}) + "\n")


def read_trace(path: str | Path) -> dict[str, list[TraceEvent]]:
    """Events by task id, in file order. Accepts a trace JSONL or a TaskResult JSON (`run --json`)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSONL: many objects
    if isinstance(whole, dict) and "trace" in whole:
        result = TaskResult.model_validate(whole)
        return {result.task_id: result.trace}
    by_task: dict[str, list[TraceEvent]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        task_id = data.pop("task_id", "task")
        by_task.setdefault(task_id, []).append(TraceEvent.model_validate(data))
    return by_task
