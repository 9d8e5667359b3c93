"""evals.experiments.relevance (an experiment): whether a request names a tool, which listed calls add nothing."""

from __future__ import annotations

from evals.experiments.relevance import by_name_words, drop_redundant_calls, in_request, named_tools, relevance
from toolkit.types import ToolCall, ToolSpec


def spec(name: str, description: str = "") -> ToolSpec:
    return ToolSpec(name=name, description=description, parameters={"type": "object", "properties": {}})


def call(name: str, **arguments) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


COUNTRY = [
    spec("country_info.largest_city", "Fetch the largest city of a country."),
    spec("country_info.capital", "Fetch the capital city of a country."),
]


def test_a_request_sharing_two_words_with_a_tool_name_names_it():
    assert relevance(COUNTRY, "Which is the largest city of Brazil?") == "named"
    # one shared word is not enough: the model decides
    assert relevance(COUNTRY, "What is the capital of Brazil?") == "unclear"


def test_the_named_tools_are_those_sharing_two_words_with_the_request():
    averages = [spec("calculate_average"), spec("calculate_standard_deviation"), spec("highest_grade")]
    assert [t.name for t in named_tools(averages, "Calculate the average grade of John")] == ["calculate_average"]
    assert named_tools(COUNTRY, "What is the capital of Brazil?") == []


def test_words_match_across_forms():
    tools = [spec("currency_conversion.convert", "Convert money.")]
    assert relevance(tools, "Convert 10 dollars, what currency conversions apply?") == "named"


def test_no_word_shared_with_any_name_or_description_is_unrelated():
    assert relevance(COUNTRY, "Tell me a joke about penguins.") == "unrelated"
    # a word from a description alone keeps it open
    assert relevance(COUNTRY, "Fetch me a coffee.") == "unclear"
    assert relevance([], "anything") == "unrelated"


def test_values_count_as_in_the_request_only_when_written_there():
    said = "The triangle has sides 3, 4 and 5; coordinates [43.653225, -79.383186]; budget $1,000."
    assert in_request(3, said) and in_request(5.0, said) and in_request(-79.383186, said) and in_request(1000, said)
    assert not in_request(1, said)  # a digit inside another number is not the number 1
    assert in_request("Triangle", said) and in_request("sides,", said)
    assert not in_request("tri", said) and not in_request(True, said)


def test_a_later_call_with_no_new_value_and_no_name_the_request_says_is_dropped():
    said = "Calculate the area of a triangle, given the lengths of its three sides: 3, 4, and 5."
    calls = [
        call("math.triangle_area_heron", side1=3, side2=4, side3=5),
        call("math.triangle_area_base_height", base=3, height=5),
    ]
    assert drop_redundant_calls(calls, said) == calls[:1]


def test_a_later_call_stays_when_it_brings_a_new_value_or_the_request_names_it():
    said = "Find the area and circumference of a circle of radius 5, and the area of a square of side 4."
    calls = [call("circle.area", radius=5), call("circle.circumference", radius=5), call("square.area", side=4)]
    assert drop_redundant_calls(calls, said) == calls
    # the same function with other values from the request: parallel calls stay
    said = "Play Taylor Swift, then Maroon 5."
    plays = [call("spotify.play", artist="Taylor Swift"), call("spotify.play", artist="Maroon 5")]
    assert drop_redundant_calls(plays, said) == plays
    # values the request never wrote are no new information
    assert drop_redundant_calls([plays[0], call("spotify.play", artist="Taylor Swift", volume=11)], said) == plays[:1]


def test_a_word_the_request_says_for_a_kept_calls_argument_does_not_keep_a_duplicate():
    said = "Calculate the displacement of a car at an initial speed of 20 m/s accelerating at 10 m/s^2 for 5 s."
    displacement = call("kinematics.calculate_displacement", initial_speed=20, acceleration=10, time=5)
    final_speed = call("kinematics.calculate_final_speed", initial_speed=20, acceleration=10, time=5)
    assert drop_redundant_calls([displacement, final_speed], said) == [displacement]
    # the request asking for the final speed too keeps it ("final" is no kept call's word)
    both = said.replace("for 5 s.", "for 5 s, and its final speed.")
    assert drop_redundant_calls([displacement, final_speed], both) == [displacement, final_speed]


def test_calls_whose_tool_the_request_names_more_come_first_so_the_less_named_duplicate_goes():
    said = "Calculate the area of a triangle with sides 5, 4 and 3."
    calls = [call("circle_properties.get", radius=5), call("triangle_area.get", side1=5, side2=4, side3=3)]
    ordered = by_name_words(calls, said)
    assert ordered == calls[::-1]
    assert drop_redundant_calls(ordered, said) == calls[1:]
    # equal standing keeps the list's order
    plays = [call("spotify.play", artist="A"), call("spotify.play", artist="B")]
    assert by_name_words(plays, "Play A and B on spotify") == plays
