"""Numbers in a call's arguments checked against the numbers the request writes. An experiment,
not the product path (evals/experiments/__init__.py says why).

A small model copying a number from the request into a JSON argument slips in two ways the
request itself can mend: it stops at a thousands separator or early in a long number
(`initial_cost: 200` for "$200,000", `generations: 1` for "100 generations"; JSON numbers have
no commas, and the model ends the number at the first token it finds likely), and it drops a
minus sign (`c: 25` for "coefficients 5, 20, and -25"). A value is changed only when the request
does not write it as it stands and writes exactly one number it is a cut or unsigned copy of;
values the model computed (3% as 0.03) are written nowhere and stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from toolkit.types import ToolCall

# a sign counts only after a non-word character: "2019-12-13" has no negative numbers
_WRITTEN = re.compile(r"(?:(?<![\w.])-)?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?:(?<![\w.])-)?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Written:
    value: float
    digits: str  # without sign and separators: "200000", "0.95"

    @property
    def integral(self) -> bool:
        return "." not in self.digits


def written_numbers(request: str) -> list[Written]:
    found = []
    for text in _WRITTEN.findall(request):
        digits = text.lstrip("-").replace(",", "")
        found.append(Written(value=float(text.replace(",", "")), digits=digits))
    return found


def _digits(value: int | float) -> str:
    return str(abs(value)) if isinstance(value, int) else repr(abs(value))


def ground_number(value: int | float, written: list[Written]) -> int | float:
    """`value`, or the one number the request writes that it is a cut or unsigned copy of."""
    if any(w.value == value for w in written):
        return value
    if value > 0 and any(w.value == -value for w in written):
        return -value
    text = _digits(value)
    longer = {w for w in written if w.digits.startswith(text) and len(w.digits) > len(text)}
    if len(longer) != 1:
        return value
    (w,) = longer
    if isinstance(value, int):
        return int(w.value) if w.integral else value
    return w.value


def _grounded(value: Any, written: list[Written]) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return ground_number(value, written)
    if isinstance(value, list):
        return [_grounded(v, written) for v in value]
    if isinstance(value, dict):
        return {k: _grounded(v, written) for k, v in value.items()}
    return value


def ground_numbers(calls: list[ToolCall], request: str) -> list[ToolCall]:
    """The calls with their numeric arguments mended against the request's numbers."""
    written = written_numbers(request)
    if not written:
        return calls
    return [c.model_copy(update={"arguments": _grounded(c.arguments, written)}) for c in calls]


__all__ = ["ground_numbers", "ground_number", "written_numbers", "Written"]
