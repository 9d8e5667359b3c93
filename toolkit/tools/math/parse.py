"""A safe parser from text to sympy objects, for the math tool.

Nothing here calls `eval`, `sympify` on text, or sympy's `parse_expr` (which evals): the text is
parsed by Python's `ast` in expression mode and the tree is walked against a whitelist. Only
numbers, names, arithmetic, comparisons, tuples/lists and calls of whitelisted sympy functions are
accepted; attribute access, subscripts, strings, lambdas, comprehensions, keyword arguments and
double-underscore names are refused with a message that says why. Unknown names become symbols.

Sizes are bounded before sympy computes anything expensive: the text's length, the number of
nodes, the digits of integer literals, exact powers whose result would exceed MAX_RESULT_BITS, and
the arguments of combinatorial functions (factorial(10**9) would run for hours).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from typing import Any

import sympy as sp

from toolkit.bindings import ToolInputError

MAX_TEXT = 2000
MAX_NODES = 400
MAX_LITERAL_DIGITS = 1000
MAX_RESULT_BITS = 14_000  # about 4,200 digits: Python prints at most 4,300 (sys.int_info)
MAX_SYMBOLIC_EXPONENT = 10_000
MAX_COMBINATORIAL_ARG = 10_000  # factorial(10**4) has 35,660 digits
MAX_FACTORINT_DIGITS = 30
MAX_N_DIGITS = 1000
SYMBOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")


def _bounded_int_args(fn: Callable[..., Any], limit: int, what: str) -> Callable[..., Any]:
    def guarded(*args: Any) -> Any:
        for a in args:
            if isinstance(a, sp.Basic) and a.is_number and a.is_real and abs(a) > limit:
                raise ToolInputError(f"{what}: argument {a} is too large (the limit is {limit})")
        return fn(*args)

    guarded.__name__ = getattr(fn, "__name__", what)
    return guarded


def _factorint(n: Any) -> Any:
    if isinstance(n, sp.Integer) and len(str(abs(n))) > MAX_FACTORINT_DIGITS:
        raise ToolInputError(f"factorint: at most {MAX_FACTORINT_DIGITS} digits")
    return sp.Dict(sp.factorint(n))


def _numeric(expr: Any, digits: Any = 15) -> Any:
    if not (isinstance(digits, sp.Integer) or isinstance(digits, int)) or not 1 <= int(digits) <= MAX_N_DIGITS:
        raise ToolInputError(f"N: digits must be an integer from 1 to {MAX_N_DIGITS}")
    return sp.N(expr, int(digits))


def _matrix_op(name: str) -> Callable[[Any], Any]:
    def op(m: Any) -> Any:
        matrix = m if isinstance(m, sp.MatrixBase) else sp.Matrix(m)
        return getattr(matrix, name)()

    op.__name__ = name
    return op


def _combinatorial(fn: Callable[..., Any]) -> Callable[..., Any]:
    return _bounded_int_args(fn, MAX_COMBINATORIAL_ARG, fn.__name__)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # elementary
    "sqrt": sp.sqrt,
    "cbrt": sp.cbrt,
    "root": sp.root,
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "log10": lambda x: sp.log(x, 10),
    "log2": lambda x: sp.log(x, 2),
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "cot": sp.cot,
    "sec": sp.sec,
    "csc": sp.csc,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "acot": sp.acot,
    "atan2": sp.atan2,
    "arcsin": sp.asin,
    "arccos": sp.acos,
    "arctan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "asinh": sp.asinh,
    "acosh": sp.acosh,
    "atanh": sp.atanh,
    "abs": sp.Abs,
    "Abs": sp.Abs,
    "sign": sp.sign,
    "floor": sp.floor,
    "ceiling": sp.ceiling,
    "ceil": sp.ceiling,
    "min": sp.Min,
    "Min": sp.Min,
    "max": sp.Max,
    "Max": sp.Max,
    "Mod": sp.Mod,
    "mod": sp.Mod,
    "re": sp.re,
    "im": sp.im,
    "conjugate": sp.conjugate,
    "arg": sp.arg,
    "Rational": sp.Rational,
    "frac": sp.Rational,
    "N": _numeric,
    "evalf": _numeric,
    "gamma": sp.gamma,
    "erf": sp.erf,
    "zeta": sp.zeta,
    # number theory and combinatorics (bounded)
    "factorial": _combinatorial(sp.factorial),
    "binomial": _combinatorial(sp.binomial),
    "fibonacci": _combinatorial(sp.fibonacci),
    "prime": _combinatorial(sp.prime),
    "primepi": _combinatorial(sp.primepi),
    "catalan": _combinatorial(sp.catalan),
    "gcd": sp.gcd,
    "lcm": sp.lcm,
    "isprime": sp.isprime,
    "nextprime": sp.nextprime,
    "factorint": _factorint,
    "divisors": lambda n: sp.divisors(n),
    "totient": sp.totient,
    "mod_inverse": sp.mod_inverse,
    # algebra and calculus
    "simplify": sp.simplify,
    "expand": sp.expand,
    "factor": sp.factor,
    "cancel": sp.cancel,
    "apart": sp.apart,
    "together": sp.together,
    "trigsimp": sp.trigsimp,
    "collect": sp.collect,
    "diff": sp.diff,
    "derivative": sp.diff,
    "integrate": sp.integrate,
    "limit": sp.limit,
    "series": sp.series,
    "summation": sp.summation,
    "Sum": sp.summation,
    "product": sp.product,
    "solve": sp.solve,
    "solveset": sp.solveset,
    "Eq": sp.Eq,
    "nsolve": sp.nsolve,
    # matrices
    "Matrix": sp.Matrix,
    "det": _matrix_op("det"),
    "inverse": _matrix_op("inv"),
    "transpose": _matrix_op("transpose"),
    "rank": _matrix_op("rank"),
    "eigenvals": lambda m: sp.Dict(_matrix_op("eigenvals")(m)),
}

CONSTANTS: dict[str, Any] = {
    "pi": sp.pi,
    "E": sp.E,
    "e": sp.E,
    "I": sp.I,
    "oo": sp.oo,
    "inf": sp.oo,
    "infinity": sp.oo,
    "GoldenRatio": sp.GoldenRatio,
    "phi": sp.GoldenRatio,
    "EulerGamma": sp.EulerGamma,
    "true": sp.true,
    "false": sp.false,
}

# Names that are functions when called but ordinary symbols when they stand alone.
SYMBOL_WHEN_BARE = {"gamma", "zeta", "re", "im", "arg", "sign", "N", "prime", "product", "frac"}

BIN_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: sp.floor(a / b),
    ast.Mod: lambda a, b: sp.Mod(a, b),
}
COMPARE_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: sp.Eq,
    ast.NotEq: sp.Ne,
    ast.Lt: sp.Lt,
    ast.LtE: sp.Le,
    ast.Gt: sp.Gt,
    ast.GtE: sp.Ge,
}
REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access (a.b) is not allowed",
    ast.Subscript: "subscripts (a[b]) are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.IfExp: "if-expressions are not allowed",
    ast.BoolOp: "and/or are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Set: "sets are not allowed",
    ast.Starred: "* unpacking is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
}

_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
_IMPLICIT_AFTER_NUMBER = re.compile(rf"(?<![\w.])({_NUMBER})(?![eE][+-]?\d)(?=[A-Za-z_(])")
_IMPLICIT_AFTER_PAREN = re.compile(r"\)(?=[A-Za-z0-9_(])")
_SINGLE_EQUALS = re.compile(r"(?<![=<>!])=(?!=)")
_UNICODE = {
    "−": "-",
    "×": "*",
    "·": "*",
    "÷": "/",
    "²": "**2",
    "³": "**3",
    "π": "pi",
    "√": "sqrt",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
}


_PERCENT_OF = re.compile(r"(\d+(?:\.\d+)?)\s*%\s*of\b", re.IGNORECASE)


def normalize(text: str) -> str:
    """Accept common math notation: `^` for powers, `2x` and `(a)(b)` for products, `=` for
    equations, `15% of 240` (a bare `%` stays the modulo operator)."""
    for k, v in _UNICODE.items():
        text = text.replace(k, v)
    text = _PERCENT_OF.sub(r"(\1/100)*", text)
    text = text.replace("^", "**")
    text = _IMPLICIT_AFTER_NUMBER.sub(r"\1*", text)
    text = _IMPLICIT_AFTER_PAREN.sub(")*", text)
    return _SINGLE_EQUALS.sub("==", text)


def parse(text: str, *, symbols: dict[str, sp.Symbol] | None = None) -> Any:
    """Text to a sympy object (or a tuple/list of them). Raises ToolInputError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ToolInputError("the expression is empty")
    if len(text) > MAX_TEXT:
        raise ToolInputError(f"the expression is too long ({len(text)} characters; the limit is {MAX_TEXT})")
    if "__" in text:
        raise ToolInputError("names with double underscores are not allowed: this is math, not Python")
    source = normalize(text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ToolInputError(
            f"not a math expression: {exc.msg} (in {source!r}); write e.g. 2*x**2 + 3, sqrt(2), solve(x**2 - 2, x)"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise ToolInputError("the expression is nested too deeply or contains invalid characters") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ToolInputError(f"the expression is too large ({nodes} parts; the limit is {MAX_NODES})")
    try:
        return _Builder(symbols if symbols is not None else {}).build(tree.body)
    except RecursionError:
        raise ToolInputError("the expression is nested too deeply") from None


class _Builder:
    def __init__(self, symbols: dict[str, sp.Symbol]):
        self.symbols = symbols

    def build(self, node: ast.AST) -> Any:
        refused = REFUSED.get(type(node))
        if refused:
            raise ToolInputError(refused)
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ToolInputError(f"{type(node).__name__} is not allowed in a math expression")
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
            raise ToolInputError(f"only numbers are allowed as literals, not {type(value).__name__} ({value!r})")
        if isinstance(value, int):
            if value.bit_length() > MAX_LITERAL_DIGITS * 3.33:
                raise ToolInputError(f"integer literals are limited to {MAX_LITERAL_DIGITS} digits")
            return sp.Integer(value)
        if isinstance(value, complex):
            return sp.Rational(repr(value.imag)) * sp.I
        if not math.isfinite(value):
            raise ToolInputError(
                "the number is too large for a decimal literal; write it as an integer power, e.g. 10**400"
            )
        return sp.Rational(repr(value))  # 0.1 means one tenth: keep decimal input exact

    def _Name(self, node: ast.Name) -> Any:
        name = node.id
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS and name not in SYMBOL_WHEN_BARE:
            raise ToolInputError(f"{name} is a function: call it, e.g. {name}(x)")
        if not SYMBOL_NAME.match(name) or name.startswith("_"):
            raise ToolInputError(f"{name!r} is not allowed as a variable name")
        return self.symbols.setdefault(name, sp.Symbol(name))

    def _Tuple(self, node: ast.Tuple) -> Any:
        return sp.Tuple(*(self.build(e) for e in node.elts))

    def _List(self, node: ast.List) -> Any:
        return [self.build(e) for e in node.elts]

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise ToolInputError(f"the operator {type(node.op).__name__} is not allowed")

    def _BinOp(self, node: ast.BinOp) -> Any:
        if isinstance(node.op, ast.Pow):
            return safe_pow(self.build(node.left), self.build(node.right))
        op = BIN_OPS.get(type(node.op))
        if op is None:
            raise ToolInputError(f"the operator {type(node.op).__name__} is not allowed (use ** or ^ for powers)")
        left, right = self.build(node.left), self.build(node.right)
        try:
            return op(left, right)
        except (TypeError, ValueError) as exc:
            raise ToolInputError(f"cannot combine {left} and {right}: {exc}") from None

    def _Compare(self, node: ast.Compare) -> Any:
        if len(node.ops) != 1:
            raise ToolInputError("chained comparisons (a < b < c) are not allowed; give one relation")
        op = COMPARE_OPS.get(type(node.ops[0]))
        if op is None:
            raise ToolInputError(f"the comparison {type(node.ops[0]).__name__} is not allowed")
        return op(self.build(node.left), self.build(node.comparators[0]))

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name):
            raise ToolInputError("only named functions can be called, e.g. sqrt(2)")
        name = node.func.id
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise ToolInputError(
                f"unknown function {name!r}{f' (for a product write {name}*(...))' if len(name) <= 2 else ''}; "
                f"known functions: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise ToolInputError(f"keyword arguments are not allowed ({name}(..., {node.keywords[0].arg or '**'}...))")
        args = [self.build(a) for a in node.args]
        try:
            return fn(*args)
        except ToolInputError:
            raise
        except (TypeError, ValueError, NotImplementedError, AttributeError) as exc:
            raise ToolInputError(f"{name}{tuple(str(a) for a in args)}: {exc}") from None


def safe_pow(base: Any, exponent: Any) -> Any:
    """`base**exponent`, refusing exact results too large to compute (9**9**9 has 370 million digits)."""
    if isinstance(exponent, sp.Basic) and exponent.is_Rational and abs(exponent) > 1:
        if isinstance(base, sp.Basic) and base.is_Rational:
            size = max(abs(base.p), abs(base.q))
            if size > 1 and float(abs(exponent)) * math.log2(size) > MAX_RESULT_BITS:
                raise ToolInputError(
                    f"the result of {base}**{exponent} is too large to compute exactly (over {MAX_RESULT_BITS} bits)"
                )
        elif isinstance(base, sp.Basic) and not base.is_number and abs(exponent) > MAX_SYMBOLIC_EXPONENT:
            raise ToolInputError(f"exponents above {MAX_SYMBOLIC_EXPONENT} are not allowed on symbolic expressions")
    try:
        return base**exponent
    except (TypeError, ValueError) as exc:
        raise ToolInputError(f"cannot compute {base}**{exponent}: {exc}") from None
