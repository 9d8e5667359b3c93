"""The math tool: exact arithmetic, algebra, calculus (sympy) and unit conversion (pint).

Expressions are parsed by `toolkit.tools.math.parse` (a whitelist over Python's AST, never eval).
Every answer carries the exact form and, when it is a number, a decimal one:
`calculate("sqrt(2)")` -> `{"exact": "sqrt(2)", "decimal": "1.41421356237310"}`.
Input that can't be used raises ToolInputError, which the executor reports as `invalid_arguments`.

Called through the executor (with a ctx), each action runs in a worker process killed after the
`time_limit_s` setting, with its memory capped at `memory_mb` (see toolkit.tools.math.bounded_call):
sympy can't be interrupted in a thread, and some integrals run for hours. Called directly, the
functions compute in the caller.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Protocol, cast

import sympy as sp

from toolkit.bindings import ToolContext, ToolInputError
from toolkit.tools.math.bounded_call import CallTimeout, call_in_process, register_error
from toolkit.tools.math.parse import parse

DEFAULT_DIGITS = 15
register_error(ToolInputError)  # comes back from the worker as itself: invalid_arguments


class BoundedAction(Protocol):
    """An action `bounded` wraps; its `compute` is the unwrapped function, which runs in the caller."""

    compute: Callable[..., Any]

    def __call__(self, *args: Any, ctx: ToolContext | None = None, **kwargs: Any) -> Any: ...


def bounded(fn: Callable[..., Any]) -> BoundedAction:
    """Run the action in a killable worker process when called with a ctx whose `isolate` setting is on."""

    @functools.wraps(fn)  # keeps the signature, `ctx` included, for the python binding
    def action(*args: Any, ctx: ToolContext | None = None, **kwargs: Any) -> Any:
        settings = dict(ctx.settings) if ctx else {}
        if ctx is None or not settings.get("isolate", True):
            return fn(*args, ctx=ctx, **kwargs)
        arguments = dict(inspect.signature(fn).bind(*args, **kwargs).arguments)
        try:
            return call_in_process(
                "toolkit.tools.math:run_action",
                {"action": fn.__name__, "arguments": arguments, "settings": settings},
                time_limit_s=float(settings.get("time_limit_s") or 20),
                memory_mb=int(settings.get("memory_mb") or 1024),
            )
        except (CallTimeout, MemoryError) as exc:
            # the same arguments would fail the same way: an input error (not retried), with advice
            raise ToolInputError(f"{exc}; ask for something simpler, or a numeric value with N(...)") from None

    action.compute = fn  # type: ignore[attr-defined]
    return cast(BoundedAction, action)


def run_action(action: str, arguments: dict[str, Any], settings: dict[str, Any]) -> Any:
    """The worker's entry point: compute one action in this process."""
    return globals()[action].compute(**arguments, ctx=ToolContext(settings=settings))


def _digits(ctx: ToolContext | None) -> int:
    digits = (ctx.settings.get("digits") if ctx else None) or DEFAULT_DIGITS
    return max(1, min(int(digits), 100))


def _decimal(value: Any, digits: int) -> str | None:
    if not isinstance(value, sp.Basic) or not value.is_number or isinstance(value, sp.logic.boolalg.Boolean):
        return None
    if isinstance(value, sp.Integer) and abs(value) < 10**digits:
        return str(value)
    try:
        return str(sp.N(value, digits))
    except (TypeError, ValueError, ArithmeticError):
        return None


def _exact(value: Any) -> Any:
    if isinstance(value, (list, tuple, sp.Tuple)):
        return [_exact(v) for v in value]
    if isinstance(value, (dict, sp.Dict)):
        return {str(k): _exact(v) for k, v in dict(value).items()}
    try:
        return str(value)
    except ValueError:  # an integer beyond Python's 4,300-digit printing limit: give its size instead
        return f"<a number of about {int(abs(int(value)).bit_length() * 0.30103) + 1} digits; see decimal>"


def _answer(value: Any, digits: int) -> dict[str, Any]:
    """The result as {"exact": ..., "decimal": ...}; lists and dicts keep their shape."""
    if isinstance(value, bool):
        return {"exact": str(value), "boolean": value}
    out: dict[str, Any] = {"exact": _exact(value)}
    if isinstance(value, (list, tuple, sp.Tuple)):
        decimals = [_decimal(v, digits) for v in value]
        if any(d is not None for d in decimals):
            out["decimal"] = decimals
    elif isinstance(value, (dict, sp.Dict)):
        by_key = {str(k): _decimal(v, digits) for k, v in dict(value).items()}
        if any(d is not None for d in by_key.values()):
            out["decimal"] = by_key
    else:
        decimal = _decimal(value, digits)
        if decimal is not None:
            out["decimal"] = decimal
    return out


def _expression(text: Any, symbols: dict[str, sp.Symbol], what: str = "expression") -> Any:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)
    if not isinstance(text, str):
        raise ToolInputError(f"{what} must be a string such as 'x**2 - 2'")
    return parse(text, symbols=symbols)


def _variables(expr: Any, variable: str | None, symbols: dict[str, sp.Symbol], action: str) -> list[sp.Symbol]:
    if variable:
        names = [v.strip() for v in variable.split(",") if v.strip()]
        out = []
        for name in names:
            sym = parse(name, symbols=symbols)
            if not isinstance(sym, sp.Symbol):
                raise ToolInputError(f"variable must be a name such as x, not {name!r}")
            out.append(sym)
        return out
    free = sorted(_free_symbols(expr), key=str)
    if len(free) == 1:
        return free
    if not free:
        raise ToolInputError(f"the expression has no variable to {action}")
    raise ToolInputError(
        f"say which variable to {action}: the expression has {', '.join(map(str, free))} (give `variable`)"
    )


def _free_symbols(expr: Any) -> set[sp.Symbol]:
    if isinstance(expr, (list, tuple)):
        return set().union(*(_free_symbols(e) for e in expr)) if expr else set()
    return set(getattr(expr, "free_symbols", set()))


@bounded
def calculate(expression: str, ctx: ToolContext | None = None) -> dict[str, Any]:
    """Evaluate an expression exactly: arithmetic, or calls like integrate(x*exp(x), x), solve(x**2 - 2, x)."""
    try:
        value = _expression(expression, {})
    except ToolInputError as exc:
        # models often send '3 km/h in m/s' here: answer it as the conversion it is
        if isinstance(expression, str) and len(_SPLIT.split(expression.strip())) == 2:
            try:
                return convert.compute(expression, ctx=ctx)
            except ToolInputError:
                pass
            raise ToolInputError(f"{exc} (for unit conversion use math.convert)") from None
        raise
    return _answer(value, _digits(ctx))


@bounded
def simplify(expression: str, ctx: ToolContext | None = None) -> dict[str, Any]:
    value = _expression(expression, {})
    if isinstance(value, list):
        return _answer([sp.simplify(v) for v in value], _digits(ctx))
    return _answer(sp.simplify(value), _digits(ctx))


@bounded
def solve(equation: str, variable: str | None = None, ctx: ToolContext | None = None) -> dict[str, Any]:
    """Solve an equation (`x**2 = 2`, or an expression equal to zero) or a system (`x + y = 3, x - y = 1`)."""
    symbols: dict[str, sp.Symbol] = {}
    parsed = _expression(equation, symbols, "equation")
    equations = list(parsed) if isinstance(parsed, (list, tuple, sp.Tuple)) else [parsed]
    unknowns = (
        _variables(equations, variable, symbols, "solve for")
        if variable or len(_free_symbols(equations)) == 1
        else sorted(_free_symbols(equations), key=str)
    )
    if not unknowns:
        raise ToolInputError("the equation has no variable to solve for")
    digits = _digits(ctx)
    if len(equations) == 1 and len(unknowns) == 1:
        solutions = sp.solve(equations[0], unknowns[0])
        if isinstance(solutions, (sp.Basic, bool)):  # inequalities give a relation, not a list
            return {"variable": str(unknowns[0]), "solution": str(solutions)}
        answer = _answer(solutions, digits)
        return {"variable": str(unknowns[0]), "solutions": answer["exact"], "decimal": answer.get("decimal")}
    solutions = sp.solve(equations, unknowns, dict=True)
    return {
        "variables": [str(u) for u in unknowns],
        "solutions": [{str(k): str(v) for k, v in s.items()} for s in solutions],
        "decimal": [{str(k): _decimal(v, digits) for k, v in s.items()} for s in solutions],
    }


@bounded
def differentiate(
    expression: str, variable: str | None = None, order: int = 1, ctx: ToolContext | None = None
) -> dict[str, Any]:
    if not 1 <= int(order) <= 20:
        raise ToolInputError("order must be from 1 to 20")
    symbols: dict[str, sp.Symbol] = {}
    expr = _expression(expression, symbols)
    var = _variables(expr, variable, symbols, "differentiate by")[0]
    return {"variable": str(var), **_answer(sp.diff(expr, var, int(order)), _digits(ctx))}


@bounded
def integrate(
    expression: str,
    variable: str | None = None,
    lower: str | float | None = None,
    upper: str | float | None = None,
    ctx: ToolContext | None = None,
) -> dict[str, Any]:
    """Antiderivative (no bounds) or definite integral (both bounds; `oo` is infinity)."""
    symbols: dict[str, sp.Symbol] = {}
    expr = _expression(expression, symbols)
    var = _variables(expr, variable, symbols, "integrate over")[0]
    if (lower is None) != (upper is None):
        raise ToolInputError("give both `lower` and `upper` for a definite integral, or neither")
    if lower is None:
        result = sp.integrate(expr, var)
    else:
        result = sp.integrate(expr, (var, _expression(lower, symbols, "lower"), _expression(upper, symbols, "upper")))
    out = {"variable": str(var), **_answer(result, _digits(ctx))}
    if result.has(sp.Integral):
        out["note"] = "sympy found no closed form; the integral is left unevaluated"
    return out


# ---- units -----------------------------------------------------------------------------------

_units_lock = threading.Lock()
_units_registry: Any = None
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+/\d+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+))\s*(.*?)\s*$")
_SPLIT = re.compile(r"\s+(?:in|to|into|as)\s+", re.IGNORECASE)
_UNIT_TEXT = re.compile(r"^[A-Za-z0-9_ µΩ°%/*^().\-]*$")
_EXPONENT = re.compile(r"(?:\*\*|\^)\s*\(?\s*-?(\d+)")


def unit_registry() -> Any:
    """One pint registry for the process (building it takes about a second); magnitudes are Fractions,
    so that 3 km/h is exactly 5/6 m/s."""
    global _units_registry
    with _units_lock:
        if _units_registry is None:
            import pint

            _units_registry = pint.UnitRegistry(non_int_type=Fraction, cache_folder=":auto:")
        return _units_registry


def _check_unit_text(text: str) -> str:
    if len(text) > 200 or not _UNIT_TEXT.match(text) or "__" in text:
        raise ToolInputError(f"not a unit expression: {text!r}")
    if any(int(e) > 12 for e in _EXPONENT.findall(text)):
        raise ToolInputError(f"unit exponents above 12 are not allowed: {text!r}")
    return text


def _format_units(units: Any, ureg: Any) -> str:
    def part(items: list[tuple[str, Any]]) -> str:
        out = []
        for name, power in items:
            symbol = ureg.get_symbol(name) or name
            power = abs(Fraction(power))
            out.append(symbol if power == 1 else f"{symbol}**{power}")
        return "*".join(out)

    items = list(units._units.items())
    num = part([(n, p) for n, p in items if p > 0]) or "1"
    den = part([(n, p) for n, p in items if p < 0])
    return num if not den else f"{num}/{den}" if "*" not in den else f"{num}/({den})"


@bounded
def convert(quantity: str, to: str | None = None, ctx: ToolContext | None = None) -> dict[str, Any]:
    """Convert a quantity between units: `convert("3 km/h", "m/s")` or `convert("3 km/h in m/s")`."""
    import pint

    if to is None or not str(to).strip():
        pieces = _SPLIT.split(quantity.strip())
        if len(pieces) < 2:
            raise ToolInputError("say what to convert to: give `to` (e.g. 'm/s'), or write '3 km/h in m/s'")
        quantity, to = " in ".join(pieces[:-1]), pieces[-1]
    match = _QUANTITY.match(quantity)
    magnitude, unit_text = (Fraction(match.group(1)), match.group(2)) if match else (Fraction(1), quantity.strip())
    _check_unit_text(unit_text)
    _check_unit_text(to)
    ureg = unit_registry()
    try:
        source = ureg.Quantity(magnitude, unit_text or "dimensionless")
        target = source.to_base_units() if to.strip().lower() in ("si", "base") else source.to(to.strip())
    except pint.errors.UndefinedUnitError as exc:
        raise ToolInputError(f"unknown unit: {exc}") from None
    except pint.errors.DimensionalityError as exc:
        raise ToolInputError(f"cannot convert: {exc}") from None
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ToolInputError(f"cannot convert {quantity!r} to {to!r}: {exc}") from None
    value = target.magnitude
    exact = sp.Rational(value.numerator, value.denominator) if isinstance(value, Fraction) else sp.nsimplify(value)
    unit = _format_units(target.units, ureg)
    decimal = _decimal(exact, _digits(ctx)) or str(exact)
    return {
        "quantity": f"{match.group(1) if match else 1} {unit_text}".strip(),
        "exact": f"{exact} {unit}",
        "decimal": f"{decimal} {unit}",
        "value": str(exact),
        "value_decimal": float(exact),
        "unit": unit,
    }
