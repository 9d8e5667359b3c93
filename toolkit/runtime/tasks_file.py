"""A batch's task file: JSONL, one task a line, each with a unique id.

    {"id": "q1", "task": "What is 2**100?"}
    {"id": 2, "task": "Weather in Paris?", "tools": ["search"], "max_steps": 4, "metadata": {"gold": "..."}}

`id` (string or integer; integers become strings) and `task` are required; `tools` (tools or
`tool.action` names offered to this task), `max_steps` and `metadata` (anything, copied to the
result line) are optional; any other field is an error, so that a typo (`tool`) never silently
changes a run. An id has at most 256 characters, a line nests at most 64 levels deep (so that
each result line can be read back). Blank lines are skipped. The whole file is checked before anything runs: a bad line
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
MAX_ID_CHARS = 256  # an id is named in summaries and the results file's index
MAX_DEPTH = 64  # nesting of a line (metadata): every result line must be readable back


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


def nesting(value: object) -> int:
    """How deeply lists and objects nest in `value` (counted without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


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
        return None, f'"id" must be a non-empty string or an integer, not {json.dumps(raw_id)[:60]}'
    if len(str(raw_id)) > MAX_ID_CHARS:
        return None, f'"id" is {len(str(raw_id))} characters long; at most {MAX_ID_CHARS}'
    if nesting(data) > MAX_DEPTH:
        return None, f"nested more than {MAX_DEPTH} levels deep"
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
        except RecursionError:
            problems.append((number, f"not readable: nested too deeply (at most {MAX_DEPTH} levels)"))
            continue
        except ValueError as exc:  # an integer of more than 4,300 digits, say
            problems.append((number, f"not readable: {str(exc).split(';')[0]}"))
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
