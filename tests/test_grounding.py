"""Numbers in call arguments mended against the request's numbers (evals.experiments.grounding, an experiment)."""

from __future__ import annotations

from evals.experiments.grounding import ground_number, ground_numbers, written_numbers
from toolkit.types import ToolCall


def test_written_numbers_read_separators_and_signs_but_not_date_hyphens():
    found = {(w.value, w.digits) for w in written_numbers("$200,000 at -3.5 on 2019-12-13, and 1,000.25")}
    assert found == {
        (200000.0, "200000"),
        (-3.5, "3.5"),
        (2019.0, "2019"),
        (12.0, "12"),
        (13.0, "13"),
        (1000.25, "1000.25"),
    }


def test_a_number_cut_at_a_separator_or_early_is_completed():
    written = written_numbers("a property costing $200,000, kept for the next 100 generations")
    assert ground_number(200, written) == 200000
    assert ground_number(1, written) == 100
    assert ground_number(10, written) == 100
    assert ground_number(0.9, written_numbers("with a probability of 0.95")) == 0.95


def test_a_dropped_minus_sign_is_put_back():
    assert ground_number(25, written_numbers("coefficients 5, 20, and -25")) == -25
    assert ground_number(2, written_numbers("from x = -2 to x = 3")) == -2


def test_values_written_as_they_are_computed_or_ambiguous_stay():
    written = written_numbers("revenues of $1M in 2019 and $1.2M in 2020, a rate of 3%, 25 or -25")
    assert ground_number(1, written) == 1  # written
    assert ground_number(25, written) == 25  # written unsigned too
    assert ground_number(0.03, written) == 0.03  # computed: written nowhere, a cut of nothing
    assert ground_number(20, written) == 20  # a cut of both 2019 and 2020: which one is unknown
    assert ground_number(1, written_numbers("1.5 kg")) == 1  # an int does not become a fraction


def test_ground_numbers_walks_nested_arguments_and_leaves_other_types():
    call = ToolCall(name="f", arguments={"amounts": [400, {"x": 7}], "ok": True, "name": "400", "n": None})
    (out,) = ground_numbers([call], "loans of $400,000 and $7,500")
    assert out.arguments == {"amounts": [400000, {"x": 7500}], "ok": True, "name": "400", "n": None}
    assert ground_numbers([call], "no numbers here") == [call]
