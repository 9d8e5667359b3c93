"""A batch's task file: JSONL, one task a line, each with a unique id.

    {"id": "q1", "task": "What is 2**100?"}
    {"id": 2, "task": "Weather in Paris?", "tools": ["search"], "max_steps": 4, "metadata": {"gold": "..."}}

`id` (string or integer; integers become strings) and `task` are required; `tools` (tools or
`tool.action` names offered to this task), `max_steps` and `metadata` (anything, copied to the
result line) are optional; any other field is an error, so that a typo (`tool`) never silently
changes a run. Blank lines are skipped. The whole file is checked before anything runs: a bad line
900 must not surface after 899 tasks have spent their tokens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from toolkit.types import TaskInput

FIELDS = ("id", "task", "tools", "max_steps", "metadata")
MAX_REPORTED = 20  # errors listed before "... and N more"


class TaskFileError(ValueError):
    """What is wrong with a task file, line by line."""

    def __init__(self, path: str | Path, problems: list[tuple[int, str]]):
        self.path = str(path)
        self.problems = problems
        shown = [
            f"{self.path}:{line}: {what}" if line else f"{self.path}: {what}" for line, what in problems[:MAX_REPORTED]
        ]
        if len(problems) > MAX_REPORTED:
            shown.append(f"... and {len(problems) - MAX_REPORTED} more")
        super().__init__("\n".join(shown))


def _check_line(data: object) -> tuple[TaskInput | None, str | None]:
    """A TaskInput, or why the line is not one."""
    if not isinstance(data, dict):
        return None, f'expected a JSON object like {{"id": ..., "task": ...}}, got {type(data).__name__}'
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        return None, f'unknown field {unknown[0]!r} (allowed: {", ".join(FIELDS)}; put your own data under "metadata")'
    raw_id = data.get("id")
    if raw_id is None:
        return None, 'missing "id"'
    if (
        isinstance(raw_id, bool)
        or not isinstance(raw_id, (str, int))
        or (isinstance(raw_id, str) and not raw_id.strip())
    ):
        return None, f'"id" must be a non-empty string or an integer, not {json.dumps(raw_id)}'
    task = data.get("task")
    if not isinstance(task, str) or not task.strip():
        return (
            None,
            'missing "task"' if task is None else f'"task" must be a non-empty string, not {json.dumps(task)[:60]}',
        )
    try:
        return TaskInput.model_validate({**data, "id": str(raw_id)}), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"{where}: {first['msg']}"


def parse_tasks(lines: Sequence[bytes | str], path: str | Path = "<tasks>") -> list[TaskInput]:
    tasks: list[TaskInput] = []
    first_line: dict[str, int] = {}
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            problems.append((number, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append((number, f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        task, problem = _check_line(data)
        if task is None:
            problems.append((number, problem or "invalid"))
            continue
        assert task.id is not None
        if task.id in first_line:
            problems.append((number, f"duplicate id {task.id!r} (first on line {first_line[task.id]})"))
            continue
        first_line[task.id] = number
        tasks.append(task)
    if not tasks and not problems:
        problems.append((0, "no tasks (the file is empty)"))
    if problems:
        raise TaskFileError(path, problems)
    return tasks


def read_tasks(path: str | Path) -> list[TaskInput]:
    """All tasks of a JSONL file, checked; TaskFileError names every bad line."""
    p = Path(path)
    if not p.is_file():
        raise TaskFileError(path, [(0, "no such file")])
    return parse_tasks(p.read_bytes().splitlines(), p)
