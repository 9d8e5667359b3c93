"""The embedded model's tool docs: signatures, not JSON schemas (pure text, no model needed)."""

from __future__ import annotations

from toolkit.models.llamacpp.prompt import tool_block
from toolkit.types import ToolSpec

BOOK = ToolSpec(
    name="trip.book",
    description="Book a trip.",
    parameters={
        "type": "object",
        "properties": {
            "who": {
                "type": "object",
                "description": "The traveller.",
                "properties": {"name": {"type": "string", "description": "Full name."}, "age": {"type": "integer"}},
                "required": ["name"],
            },
            "legs": {
                "type": "array",
                "items": {"type": "object", "properties": {"to": {"type": "string", "description": "City."}}},
            },
            "cabin": {"type": "string", "enum": ["eco", "biz"], "default": "eco"},
            "nights": {"type": ["integer", "null"]},
        },
        "required": ["who"],
    },
)


def test_a_tool_is_one_signature_line_with_types_optionality_enums_and_defaults():
    block = tool_block([BOOK], "")
    assert (
        "- trip.book(who: {name: string, age?: integer}, legs?: array of {to?: string}, "
        'cabin?: "eco" | "biz" = "eco", nights?: integer | null): Book a trip.'
    ) in block.splitlines()


def test_parameter_descriptions_follow_with_dotted_paths_into_objects_and_arrays():
    notes = tool_block([BOOK], "").split("Book a trip.\n", 1)[1].splitlines()[0]
    assert notes == "  who: The traveller. who.name: Full name. legs.to: City."


def test_no_parameters_and_tools_already_listed_in_the_system_text():
    bare = ToolSpec(name="clock.now", description="The time.", parameters={"type": "object", "properties": {}})
    assert "- clock.now(): The time." in tool_block([bare], "").splitlines()
    assert "Tools:" not in tool_block([bare], "Use clock.now for the time.")


# --- the model's own tool format ------------------------------------------------------------------

HERMES_LIKE_TEMPLATE = (  # the shape of Qwen 2.5's template: tools listed, calls in <tool_call> blocks
    "{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>{% endif %}"
    "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }}"
    "</tool_call>{% endfor %}{% else %}{{ m.role }}: {{ m.content }}{% endif %}{% endfor %}"
)


def test_a_template_with_tool_call_blocks_gets_its_own_format_others_the_generic_one():
    from toolkit.models.llamacpp.formats import GENERIC, HERMES, format_for_template
    from toolkit.models.llamacpp.prompt import CHATML_TEMPLATE, GEMMA_TEMPLATE

    assert format_for_template(HERMES_LIKE_TEMPLATE) is HERMES
    assert format_for_template(CHATML_TEMPLATE) is GENERIC and format_for_template(GEMMA_TEMPLATE) is GENERIC
    assert format_for_template(None) is GENERIC
    assert HERMES.first_call == '<tool_call>\n{"name": "' and HERMES.next_call == '\n<tool_call>\n{"name": "'


def test_hermes_messages_keep_tool_calls_and_results_for_the_template_and_hand_it_the_tools():
    from toolkit.models.llamacpp.formats import HERMES
    from toolkit.models.llamacpp.prompt import ChatRenderer, chat_messages
    from toolkit.types import LLMRequest, Message, ToolCall

    call = ToolCall(id="c1", name="trip.book", arguments={"who": {"name": "Ann"}})
    request = LLMRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="Book Ann."),
            Message(role="assistant", tool_calls=[call]),
            Message(role="tool", content="booked", tool_call_id="c1", name="trip.book"),
        ],
        tools=[BOOK],
    )
    messages, tools = chat_messages(request, with_tools=True, fmt=HERMES)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "trip.book", "arguments": {"who": {"name": "Ann"}}}
    assert tools == [
        {
            "type": "function",
            "function": {"name": "trip.book", "description": "Book a trip.", "parameters": BOOK.parameters},
        }
    ]
    assert "Reply with" not in messages[0]["content"]  # the template, not our text, says how to call
    assert chat_messages(request, with_tools=False, fmt=HERMES)[1] is None
    text = ChatRenderer(HERMES_LIKE_TEMPLATE, "", "").render(messages, tools)
    assert text.startswith('<tools>{"type": "function"') and "<tool_call>trip.book</tool_call>" in text


def test_replies_that_open_a_call_without_the_tag_are_told_from_answers():
    from toolkit.models.llamacpp.tool_turn import _untagged_call

    for opening in ('{"name": "x"', "```json\n{", "<tool_output>\n{", "```", "  {"):
        assert _untagged_call(opening), opening
    for opening in ("The answer is 4", "I will call", "<b>bold</b>", "```python\nprint(1)"):
        assert not _untagged_call(opening), opening
