"""Incremental parsing of a streamed plan: complete steps come out of partial JSON as it arrives.

The plan is `{"thought": "...", "steps": [{...}, {...}, ...]}` (or a bare list of steps). The
parser finds the `steps` array, then scans it character by character (tracking strings, escapes
and nesting); each time a step object closes, it is parsed and handed out, while the model is
still generating the rest. `finish` parses the whole text and reports what was wrong with it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from toolkit.planner.dag.plan import PlanError, PlanStep

_STEPS_KEY = re.compile(r'"steps"\s*:\s*\[')
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$")


class PlanStreamParser:
    def __init__(self) -> None:
        self.text = ""
        self._pos = -1  # scan position inside the steps array; -1 until the array is found
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._item_start = -1
        self._closed = False
        self.raw_steps: list[Any] = []  # each complete step object, parsed JSON (or the raw text)

    def feed(self, chunk: str) -> list[Any]:
        """Add text; return the step objects completed by it (as parsed JSON)."""
        self.text += chunk
        if self._pos < 0 and not self._find_array():
            return []
        return self._scan()

    @property
    def open_chars(self) -> int:
        """Characters of the step being written (0 between steps): how long a step has been open."""
        return len(self.text) - self._item_start if self._depth > 0 and self._item_start >= 0 else 0

    def _find_array(self) -> bool:
        stripped = _FENCE.sub("", self.text.lstrip())
        if stripped.startswith("["):
            self._pos = self.text.index("[") + 1
            return True
        match = _STEPS_KEY.search(self.text)
        if match:
            self._pos = match.end()
            return True
        return False

    def _scan(self) -> list[Any]:
        done: list[Any] = []
        text = self.text
        i = self._pos
        while i < len(text) and not self._closed:
            ch = text[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                if self._depth == 0:
                    self._item_start = i
                self._depth += 1
            elif ch in "}]":
                if self._depth == 0:  # the steps array itself closes
                    self._closed = True
                else:
                    self._depth -= 1
                    if self._depth == 0:
                        item = text[self._item_start : i + 1]
                        try:
                            value: Any = json.loads(item)
                        except json.JSONDecodeError:
                            value = item  # a step that is not JSON: reported by `to_step`
                        self.raw_steps.append(value)
                        done.append(value)
            i += 1
        self._pos = i
        return done

    def finish(self) -> tuple[str, list[Any], PlanError | None]:
        """After the last chunk: the thought, every step object, and an error if the text as a
        whole is not a valid plan (steps already streamed are kept either way)."""
        body = _FENCE.sub("", self.text.strip())
        try:
            whole = json.loads(body)
        except json.JSONDecodeError as exc:
            if not self.raw_steps:
                return (
                    "",
                    [],
                    PlanError(
                        message=f"the plan is not valid JSON ({exc.msg} at character {exc.pos}); reply with a JSON plan"
                    ),
                )
            return (
                "",
                self.raw_steps,
                PlanError(message=f"the plan's JSON is incomplete ({exc.msg}); only its complete steps were used"),
            )
        if isinstance(whole, list):
            return "", whole, None
        if not isinstance(whole, dict) or not isinstance(whole.get("steps"), list):
            return "", self.raw_steps, PlanError(message='the plan must be an object with a "steps" list')
        thought = whole["thought"] if isinstance(whole.get("thought"), str) else ""
        return thought, whole["steps"], None


def to_step(raw: Any, position: int) -> tuple[PlanStep | None, PlanError | None]:
    """A step object as a PlanStep, or the error that says what is wrong with it."""
    try:
        return PlanStep.model_validate(raw), None
    except ValidationError as exc:
        step_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), int) else None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'step'}: {e['msg']}" for e in exc.errors()[:3])
        return None, PlanError(step=step_id, message=f"step #{position + 1} of the plan is malformed: {problems}")
