"""The math tool, through its functions and through the real registry + executor."""

from __future__ import annotations

import pytest

from toolkit.bindings import ToolInputError
from toolkit.registry import ToolRegistry, builtin_manifest_dir
from toolkit.runtime.executor import Executor
from toolkit.tools import math as m
from toolkit.types import ErrorCode, ToolCall


@pytest.fixture(scope="module")
def executor() -> Executor:
    registry = ToolRegistry.default(entry_points=False)
    assert registry.tools["math"].available, registry.tools["math"].reason
    return Executor(registry)


async def call(executor: Executor, name: str, **arguments):
    return await executor.execute(ToolCall(id="c1", name=name, arguments=arguments))


# ---- the checks, through the executor --------------------------------------------------


async def test_integrate_x_exp_x_exactly(executor):
    obs = await call(executor, "math.calculate", expression="integrate(x*exp(x), x)")
    assert obs.ok, obs.text
    assert obs.content["exact"] == "(x - 1)*exp(x)"
    obs = await call(executor, "math.integrate", expression="x*exp(x)", variable="x")
    assert obs.content["exact"] == "(x - 1)*exp(x)"


async def test_solve_x_squared_minus_2(executor):
    obs = await call(executor, "math.calculate", expression="solve(x**2 - 2, x)")
    assert obs.content["exact"] == ["-sqrt(2)", "sqrt(2)"]
    obs = await call(executor, "math.solve", equation="x**2 - 2", variable="x")
    assert obs.ok and obs.content["solutions"] == ["-sqrt(2)", "sqrt(2)"]
    assert obs.content["decimal"] == ["-1.41421356237310", "1.41421356237310"]


async def test_3_km_per_h_in_m_per_s_exactly(executor):
    obs = await call(executor, "math.convert", quantity="3 km/h in m/s")
    assert obs.ok, obs.text
    assert obs.content["exact"] == "5/6 m/s"
    assert obs.content["value"] == "5/6"
    assert obs.content["decimal"].startswith("0.83333333333")
    obs = await call(executor, "math.convert", quantity="3 km/h", to="m/s")
    assert obs.content["exact"] == "5/6 m/s"


@pytest.mark.parametrize(
    "expression, why",
    [
        ("__import__('os').system('id')", "double underscores"),
        ("().__class__.__bases__", "double underscores"),
        ("(lambda: 1)()", "lambda"),
        ("x.real", "attribute access"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("eval('1+1')", "unknown function 'eval'"),
        ("sympify('x')", "unknown function 'sympify'"),
        ("[c for c in x]", "comprehensions"),
        ("x[0]", "subscripts"),
        ("'text'", "only numbers"),
        ("solve(x, **y)", "keyword arguments"),
        ("solve(x, dict=True)", "only numbers"),  # `=` means an equation: dict == True, and True isn't math
        ("import os", "not a math expression"),
    ],
)
async def test_code_is_refused_as_invalid_arguments(executor, expression, why):
    obs = await call(executor, "math.calculate", expression=expression)
    assert not obs.ok
    assert obs.error == ErrorCode.invalid_arguments
    assert why in obs.message
    assert obs.attempts == 1  # an input error is not retried


async def test_huge_computations_are_refused_not_run(executor):
    for expression, why in [
        ("9**9**9**9", "too large"),
        ("factorial(10**9)", "too large"),
        ("(x + 1)**100000", "exponents above"),
    ]:
        obs = await call(executor, "math.calculate", expression=expression)
        assert obs.error == ErrorCode.invalid_arguments and why in obs.message, obs.text


async def test_a_computation_past_its_time_limit_is_killed():
    registry = ToolRegistry(tool_settings={"math": {"time_limit_s": 1}})
    registry.load_file(builtin_manifest_dir() / "math.yaml")
    executor = Executor(registry)
    obs = await call(executor, "math.integrate", expression="exp(sin(x)**3)*x**5*log(x)**2", variable="x")
    assert obs.error == ErrorCode.invalid_arguments and obs.attempts == 1  # the same call would fail again
    assert "stopped after 1 s" in obs.message
    obs = await call(executor, "math.calculate", expression="2 + 2")  # a fresh worker takes over
    assert obs.ok and obs.content["exact"] == "4"


async def test_schema_errors_come_before_the_tool(executor):
    obs = await call(executor, "math.calculate", expr="1+1")
    assert obs.error == ErrorCode.invalid_arguments and "expression" in obs.message


# ---- the functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, exact, decimal",
    [
        ("12 * (7 + 5)", "144", "144"),
        ("2**100", "1267650600228229401496703205376", "1.26765060022823e+30"),
        ("2^10", "1024", "1024"),
        ("sqrt(2)", "sqrt(2)", "1.41421356237310"),
        ("0.1 + 0.2", "3/10", "0.300000000000000"),
        ("1/3 + 1/6", "1/2", "0.500000000000000"),
        ("sin(pi/6)", "1/2", "0.500000000000000"),
        ("3(4 + 1)", "15", "15"),
        ("1e3 * 2", "2000", "2000"),
        ("integrate(exp(-x**2), (x, -oo, oo))", "sqrt(pi)", "1.77245385090552"),
        ("det(Matrix([[1, 2], [3, 4]]))", "-2", "-2"),
        ("gcd(12, 18)", "6", "6"),
        ("15% of 240", "36", "36"),
        ("10 % 3", "1", "1"),
    ],
)
def test_calculate(expression, exact, decimal):
    assert m.calculate(expression) == {"exact": exact, "decimal": decimal}


def test_symbolic_results_have_no_decimal():
    assert m.calculate("2x + 3x") == {"exact": "5*x"}
    assert m.simplify("sin(x)**2 + cos(x)**2")["exact"] == "1"
    assert m.simplify("(x**2 - 1)/(x - 1)")["exact"] == "x + 1"


def test_solve_forms():
    assert m.solve("3*x + 5 = 20")["solutions"] == ["5"]
    system = m.solve("x + y = 10, x - y = 2", "x, y")
    assert system["solutions"] == [{"x": "6", "y": "4"}]
    assert m.solve("x**2 < 4")["solution"] == "(-2 < x) & (x < 2)"
    with pytest.raises(ToolInputError, match="no variable"):
        m.solve("3 = 4")


def test_differentiate_and_integrate():
    assert m.differentiate("x**3*sin(x)")["exact"] == "x**3*cos(x) + 3*x**2*sin(x)"
    assert m.differentiate("exp(2*t)", "t", order=2)["exact"] == "4*exp(2*t)"
    assert m.integrate("x**2", "x", 0, 3)["exact"] == "9"
    assert m.integrate("exp(-x)", "x", "0", "oo")["exact"] == "1"
    with pytest.raises(ToolInputError, match="which variable"):
        m.differentiate("x*y")
    with pytest.raises(ToolInputError, match="both"):
        m.integrate("x", "x", lower=0)


def test_convert():
    assert m.convert("100 degF", "degC")["exact"] == "340/9 °C"
    assert m.convert("1 mile", "km")["decimal"].startswith("1.609344")
    assert m.convert("1 kWh in J")["exact"] == "3600000 J"
    for bad, why in [
        ("3 km in s", "cannot convert"),
        ("3 foo in m", "unknown unit"),
        ("3 km/h", "say what to convert to"),
        ("1 m in ft; import os", "not a unit expression"),
        ("1 m in m**100", "exponents"),
    ]:
        with pytest.raises(ToolInputError, match=why):
            m.convert(bad)


def test_calculate_answers_a_unit_conversion_sent_to_it():
    assert m.calculate("3 km/h in m/s")["exact"] == "5/6 m/s"
    with pytest.raises(ToolInputError, match="use math.convert"):
        m.calculate("x in y")


def test_precision_follows_the_digits_setting():
    from toolkit.bindings import ToolContext

    assert m.calculate("1/3", ctx=ToolContext(settings={"digits": 5}))["decimal"] == "0.33333"
