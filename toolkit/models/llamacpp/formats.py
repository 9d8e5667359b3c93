"""The tool-call formats the embedded model is prompted and decoded in.

A model whose chat template carries a tool format of its own was trained on it, so it is the
format it calls tools best in; a model without one gets the generic format. The format is chosen
from the GGUF's chat template, the way llama.cpp's server chooses its handler (common/chat.cpp:
a template that writes `<tool_call>` is Hermes 2 Pro / Qwen 2.5's):

- `hermes` (Qwen 2.5, Hermes 2/3): the template itself lists the tools (JSON function schemas in
  `<tools></tools>` in the system turn); a call is `<tool_call>\\n{"name": ..., "arguments": ...}
  \\n</tool_call>`, several calls are several blocks in one turn, an answer is plain text, results
  come back in `<tool_response>` blocks of a user turn (the template's `tool` role).
- `generic` (SmolLM2, Gemma 3, any other): the tools are described in the system text (prompt.py)
  with the reply format; a call is a `{"name": ..., "arguments": ...}` line, several calls are
  several lines, and the answer is the `final_answer` pseudo-tool's argument.

Either way the reply is decoded under a grammar in stages (tool_turn.py): the tool name is a
choice among the offered names and the arguments are decoded under the tool's JSON schema, so a
call can't be unparseable. Only the text around the JSON differs; a `ToolFormat` holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

NAME_OPEN = '{"name": "'  # every format writes a call's JSON from here; the name follows
ARGS_INFIX = ', "arguments": '  # written after the name's closing quote


@dataclass(frozen=True)
class ToolFormat:
    name: str
    opener: str  # what a reply that calls begins with, before NAME_OPEN ("" for generic)
    separator: str  # what comes between two calls of one turn, before the next call's opener
    closer: str  # what follows the arguments' JSON object to end a call
    answer_in_text: bool  # the answer is the reply's plain text (else the final_answer pseudo-tool)
    template_lists_tools: bool  # the chat template renders the tools itself (passed as `tools`)

    @property
    def first_call(self) -> str:
        """The text from the start of the reply to the first call's name."""
        return self.opener + NAME_OPEN

    @property
    def next_call(self) -> str:
        """The text that opens one more call after a call's closer, up to its name."""
        return self.separator + self.opener + NAME_OPEN


HERMES = ToolFormat(
    name="hermes",
    opener="<tool_call>\n",
    separator="\n",
    closer="}\n</tool_call>",
    answer_in_text=True,
    template_lists_tools=True,
)
GENERIC = ToolFormat(
    name="generic",
    opener="",
    separator="\n",
    closer="}",
    answer_in_text=False,
    template_lists_tools=False,
)
FORMATS = {f.name: f for f in (HERMES, GENERIC)}


def format_for_template(template: str | None) -> ToolFormat:
    """The tool format a chat template carries: `hermes` when it writes `<tool_call>` blocks and
    lists the tools it is given, else `generic`."""
    if template and "<tool_call>" in template and "tools" in template:
        return HERMES
    return GENERIC
