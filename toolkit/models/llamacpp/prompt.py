"""Prompts for the embedded model: our messages -> the model's chat template -> one string.

The template comes from the GGUF metadata (`tokenizer.chat_template`), rendered with
llama-cpp-python's Jinja2 chat formatter, in the model's tool format (formats.py):

- `hermes` (the template has its own tool format, Qwen 2.5): the tools and the conversation go to
  the template as they are, as OpenAI-style `tools`, assistant `tool_calls` and `tool` messages;
  the template writes them in the format the model was trained on.
- `generic` (small chat models without one): tools are described in the system message together
  with the reply format the grammar enforces:

      {"name": "<tool name>", "arguments": {...}}            a tool call (one line each)
      {"name": "final_answer", "arguments": {"answer": "..."}}   the final answer

  Earlier tool calls are written back in that same format and tool results become user turns
  (not every template knows a `tool` role; Gemma's requires user/assistant alternation), so the
  conversation reads the same at every step.

The system message is built only from the request's system text and the tool list,
deterministically, so the prompt prefix (system prompt + tool docs) is byte-identical across
steps and agents: the engine reuses its KV cache.
"""

from __future__ import annotations

import json
from typing import Any

from toolkit.models.grammar import JSON_CHAR_RULE
from toolkit.models.llamacpp.formats import GENERIC, ToolFormat
from toolkit.types import LLMRequest, Message, ToolSpec

FINAL_ANSWER = "final_answer"
FINAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}

# No `}` in a final answer: a tiny model that forgets the closing quote writes `}}` next and then
# runs on (`144.0}}</tool_output> 144.0.0.0...` for the README's main job on the Q8_0 weights).
# With `}` masked, its next choice is the quote it forgot. Answers lose literal braces.
FINAL_CHAR_RULE = JSON_CHAR_RULE.replace('[^"\\', '[^"}\\', 1)
FINAL_MAX_CHARS = 400  # the final answer string, at most
FINAL_OVERHEAD_TOKENS = 12  # `{"answer": "` and `"}`, generously


def final_grammar(budget_tokens: int) -> str:
    """The final answer's arguments, by hand rather than from FINAL_SCHEMA, with the answer string
    bounded so that a small model that starts repeating itself still closes the JSON in time. One
    character per token is the bound that holds: SmolLM2 writes digits one token each, and loops
    like "1.5555..." ran 400 characters past a 256-token budget."""
    limit = max(16, min(FINAL_MAX_CHARS, budget_tokens - FINAL_OVERHEAD_TOKENS))
    return (
        r'root ::= "{" " "? "\"answer\"" " "? ":" " "? "\"" char{0,'
        + str(limit)
        + r'} "\"" " "? "}"'
        + "\n"
        + FINAL_CHAR_RULE
    )


MAX_EXAMPLES_PER_TOOL = 1  # per tool (`math`), not per action: long example lists drown small models

# Used when the GGUF has no chat template: Gemma's turn format for the gemma family (the same as
# Google's template: the system text is prefixed to the first user turn), else ChatML.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first_prefix = messages[0]['content'] + '\\n\\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set first_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\\n' }}"
    "{{ ((first_prefix if loop.first else '') + message['content']) | trim }}{{ '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def call_json(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def _names(required: Any) -> set[str]:
    return {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()


def _type_text(schema: dict[str, Any]) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {_type_text(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("properties"), dict):
        required = _names(schema.get("required"))
        fields = [f"{k}{'' if k in required else '?'}: {_type_text(v)}" for k, v in schema["properties"].items()]
        return "{" + ", ".join(fields) + "}"
    return str(kind or "any")


def _notes(schema: dict[str, Any], path: str) -> list[str]:
    """`path: description` for a parameter and, inside objects and arrays of objects, its fields."""
    if not isinstance(schema, dict):
        return []
    notes = [f"{path}: {str(schema['description']).strip()}"] if schema.get("description") else []
    inner = schema.get("items") if schema.get("type") == "array" else schema
    if isinstance(inner, dict) and isinstance(inner.get("properties"), dict):
        for key, sub in inner["properties"].items():
            notes += _notes(sub, f"{path}.{key}")
    return notes


def signature_text(spec: ToolSpec) -> str:
    """`- name(a: integer, b?: string = "x"): description` and a line of parameter notes.

    Signatures rather than JSON schemas: the grammar enforces the schema anyway, and the schema's
    JSON syntax was ~17% of a BFCL prompt (413 -> 343 tokens a question, accuracy unchanged on
    40 questions: benchmarks/bfcl_models.py). Prefill is what the embedded model spends most on.
    """
    params = spec.parameters or {}
    props = params["properties"] if isinstance(params.get("properties"), dict) else {}
    required = _names(params.get("required"))
    args, notes = [], []
    for key, schema in props.items():
        arg = f"{key}{'' if key in required else '?'}: {_type_text(schema)}"
        if isinstance(schema, dict) and "default" in schema:
            arg += f" = {json.dumps(schema['default'], ensure_ascii=False)}"
        args.append(arg)
        notes += _notes(schema, key)
    line = f"- {spec.name}({', '.join(args)}): {spec.description.strip()}"
    return line + ("\n  " + " ".join(notes) if notes else "")


def tool_block(tools: list[ToolSpec], system_text: str) -> str:
    """The reply format, the tools (unless the system text already lists them all) and examples."""
    lines = [
        "Reply with exactly one JSON object and nothing else:",
        '- to call a tool: {"name": "<tool name>", "arguments": {<arguments>}}',
        f'- to give the final answer: {{"name": "{FINAL_ANSWER}", "arguments": {{"answer": "<the answer>"}}}}',
        "After a tool result, give the final answer if the result answers the task.",
    ]
    if not all(spec.name in system_text for spec in tools):
        lines.append("Tools:")
        lines.extend(signature_text(spec) for spec in tools)
    examples: list[str] = []
    per_tool: dict[str, int] = {}
    for spec in tools:
        tool = spec.name.split(".", 1)[0]
        for ex in spec.examples:
            task, args = ex.get("task"), ex.get("arguments")
            if per_tool.get(tool, 0) < MAX_EXAMPLES_PER_TOOL and isinstance(task, str) and isinstance(args, dict):
                examples.append(f"Task: {task}\nReply: {call_json(spec.name, args)}")
                per_tool[tool] = per_tool.get(tool, 0) + 1
    if examples:
        lines.append("Examples:")
        lines.extend(examples)
    return "\n".join(lines)


def _assistant_content(message: Message) -> str:
    parts = [message.content.strip()] if message.content.strip() and not message.tool_calls else []
    parts += [call_json(c.name, c.arguments) for c in message.tool_calls]
    return "\n".join(parts)


def _system_text(request: LLMRequest) -> str:
    return "\n\n".join(m.content for m in request.messages if m.role == "system" and m.content)


def chat_messages(
    request: LLMRequest, *, with_tools: bool, fmt: ToolFormat = GENERIC
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Our messages as template messages, and the tools to hand the template (None: it is not
    given any). Generic: one system message first, then strictly alternating user/assistant
    turns (consecutive turns of one role are merged), tools described in the system message.
    Hermes: the messages as the template expects them, tool calls and results included."""
    if fmt.template_lists_tools:
        return _template_messages(request), (
            [openai_tool(t) for t in request.tools] if with_tools and request.tools else None
        )
    system = _system_text(request)
    if with_tools and request.tools:
        system = (system + "\n\n" if system else "") + tool_block(request.tools, system)
    turns: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        content = _assistant_content(m) if role == "assistant" else m.content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + content
        else:
            turns.append({"role": role, "content": content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": "Begin."})
    return ([{"role": "system", "content": system}] if system else []) + turns, None


def openai_tool(spec: ToolSpec) -> dict[str, Any]:
    """A tool as chat templates take it (the OpenAI function shape Hugging Face templates use)."""
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description.strip(), "parameters": spec.parameters},
    }


def _template_messages(request: LLMRequest) -> list[dict[str, Any]]:
    """One system message (the request's system texts joined), then the conversation with
    assistant tool calls and `tool` results as templates with a tool format expect them."""
    system = _system_text(request)
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in request.messages:
        if m.role == "system":
            continue
        if m.role == "assistant":
            message: dict[str, Any] = {"role": "assistant", "content": m.content.strip()}
            if m.tool_calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ]
            out.append(message)
        elif m.role == "tool":
            out.append({"role": "tool", "content": m.content, "tool_call_id": m.tool_call_id or "", "name": m.name})
        else:
            out.append({"role": "user", "content": m.content})
    return out


class ChatRenderer:
    """Renders template messages with the model's own chat template."""

    def __init__(self, template: str | None, bos_token: str, eos_token: str, architecture: str = ""):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        fallback = GEMMA_TEMPLATE if architecture.startswith("gemma") else CHATML_TEMPLATE
        self.template = template or fallback
        self.bos_token = bos_token
        # Any: llama-cpp-python types `messages` as its TypedDicts; ours are the same role/content dicts
        self._formatter: Any = Jinja2ChatFormatter(template=self.template, eos_token=eos_token, bos_token=bos_token)

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt text, ending with the assistant turn's opening (generation prompt)."""
        try:
            return self._formatter(messages=messages, tools=tools).prompt
        except Exception as exc:  # noqa: BLE001 - templates raise on shapes they dislike
            if messages and messages[0]["role"] == "system" and len(messages) > 1:  # some reject a system role
                merged = [dict(m) for m in messages[1:]]
                merged[0]["content"] = messages[0]["content"] + "\n\n" + merged[0]["content"]
                try:
                    return self._formatter(messages=merged, tools=tools).prompt
                except Exception:  # noqa: BLE001
                    pass
            raise ValueError(f"the model's chat template failed: {exc}") from None

    def starts_with_bos(self, text: str) -> bool:
        return bool(self.bos_token) and text.startswith(self.bos_token)
