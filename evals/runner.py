"""What every eval shares: the report (JSON and a Markdown table), the progress bar, data folders.

A report has one column per system run in the same invocation (the engine first, then its
baseline), one row per category or metric, and the per-item details for inspection.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
R = TypeVar("R")


class ReportRow(BaseModel):
    """One line of the table: a category or a metric, with a value per system."""

    name: str
    n: int = 0
    values: dict[str, float | None] = Field(default_factory=dict)
    unit: str = "%"  # "%" values are fractions shown as percentages; "s" seconds; "" plain


class EvalReport(BaseModel):
    suite: str
    model: str
    systems: list[str]  # column labels: the engine first, then the baseline(s)
    rows: list[ReportRow] = Field(default_factory=list)
    items: list[dict[str, Any]] = Field(default_factory=list)  # per question, per system
    notes: list[str] = Field(default_factory=list)
    wall_s: dict[str, float] = Field(default_factory=dict)  # per system
    ids: list[str] = Field(default_factory=list)  # the items scored, in order

    def row(self, name: str) -> ReportRow:
        return next(r for r in self.rows if r.name == name)

    def to_markdown(self) -> str:
        head = f"### {self.suite} — model `{self.model}`\n\n"
        columns = ["", "n", *self.systems]
        if len(self.systems) >= 2:
            columns.append("Δ (1st − baseline)")
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in self.rows:
            cells = [row.name, str(row.n)] + [_format(row.values.get(s), row.unit) for s in self.systems]
            if len(self.systems) >= 2:
                a, b = row.values.get(self.systems[0]), row.values.get(self.systems[-1])
                cells.append(_format(a - b, row.unit, signed=True) if a is not None and b is not None else "")
            lines.append("| " + " | ".join(cells) + " |")
        wall = ", ".join(f"{s}: {t:.1f} s" for s, t in self.wall_s.items())
        tail = [f"\nWall time: {wall}."] if wall else []
        tail += [f"- {note}" for note in self.notes]
        if self.ids:
            tail.append(f"- Ids scored ({len(self.ids)}): {', '.join(self.ids)}.")
        return head + "\n".join(lines) + "\n" + "\n".join(tail) + "\n"

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write the JSON report to `path` and the Markdown table beside it (`.md`)."""
        json_path = Path(path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        md_path = json_path.with_suffix(".md")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return json_path, md_path


def _format(value: float | None, unit: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    sign = "+" if signed and value >= 0 else ""
    if unit == "%":
        return f"{sign}{100 * value:.1f}%"
    if unit == "s":
        return f"{sign}{value:.2f} s"
    return f"{sign}{value:.3f}"


def model_label(model: str | None, backend: Any) -> str:
    """The model string as given (or `default`) and what the backend says it loaded."""
    name = getattr(backend, "name", "")
    given = model or "default"
    return f"{given} ({name})" if name and name != given else given


def data_root(data_dir: str | Path | None) -> Path | None:
    """`--data-dir`, else `$TOOLKIT_EVAL_DATA`, else None (a suite may have its own fallback)."""
    if data_dir:
        return Path(data_dir)
    env = os.environ.get("TOOLKIT_EVAL_DATA")
    return Path(env) if env else None


def suite_dir(data_dir: str | Path | None, suite: str, marker: str) -> Path:
    """The folder of one suite holding `marker`: D itself or D/<suite>. Clear error otherwise."""
    root = data_root(data_dir)
    if root is None:
        raise FileNotFoundError(
            f"no data for {suite}: pass --data-dir or set TOOLKIT_EVAL_DATA (the folder holding {suite}/)"
        )
    for candidate in (root, root / suite):
        if (candidate / marker).is_file():
            return candidate
    raise FileNotFoundError(f"no {marker} under {root} or {root / suite}; pass --data-dir or set TOOLKIT_EVAL_DATA")


def progress_bar(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


async def run_all(
    label: str,
    items: Iterable[T],
    work: Callable[[T], Awaitable[R]],
    progress: Progress | None,
    concurrency: int = 1,
) -> tuple[list[R], float]:
    """Run `work` on every item (at most `concurrency` at once), ticking a progress bar.

    Returns the results in input order and the wall time. `work` must not raise: each suite turns
    failures into a scored result, so that one bad item never stops a run.
    """
    items = list(items)
    task_id = progress.add_task(label, total=len(items)) if progress else None
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> R:
        async with semaphore:
            result = await work(item)
        if progress is not None and task_id is not None:
            progress.advance(task_id)
            if not progress.console.is_terminal:  # no live bar in a log file: a line per item instead
                done = int(progress.tasks[task_id].completed)
                progress.console.print(f"{label}: {done}/{len(items)} ({time.perf_counter() - started:.0f} s)")
        return result

    started = time.perf_counter()
    results = await asyncio.gather(*(one(item) for item in items))
    return list(results), time.perf_counter() - started


async def run_systems(
    runs: Sequence[tuple[str, Callable[[], Awaitable[tuple[list[R], float]]]]], side_by_side: bool
) -> tuple[list[R], dict[str, float]]:
    """Run each system's pass over the items (label, a `run_all` call): all at once when
    `side_by_side`, else one after the other. Returns every result and each system's wall time."""
    if side_by_side:
        done = await asyncio.gather(*(run() for _, run in runs))
    else:
        done = [await run() for _, run in runs]
    results = [r for rs, _ in done for r in rs]
    return results, {label: round(seconds, 2) for (label, _), (_, seconds) in zip(runs, done, strict=True)}


def systems_note(side_by_side: bool) -> str:
    """The report's note on how the systems shared the machine (their wall times depend on it)."""
    if side_by_side:
        return "The systems ran side by side, on half the cores each: their wall times are not those of a run alone."
    return "The systems ran one after the other, each on all cores."


def print_report(report: EvalReport, as_json: bool, console: Console | None = None) -> None:
    if as_json:
        print(json.dumps(report.model_dump(exclude={"items"}), indent=2))
    else:
        print(report.to_markdown())
