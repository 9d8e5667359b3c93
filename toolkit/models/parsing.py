"""Raw model output -> tool calls or a final answer, for backends that can't constrain decoding
(or servers that leave calls in `content`).

Recognised shapes, anywhere in the text:

    {"name": "math.calculate", "arguments": {...}}        also "tool"/"tool_name"/"action"/"function"
    {"tool": "...", "args": {...}}                         and "parameters"/"input"/"action_input"
    [{...}, {...}]  or  {"tool_calls": [...]}              a parallel batch
    {"type": "function", "function": {"name": ..., "arguments": "<json string>"}}   OpenAI style
    ```json ... ```                                        fenced blocks
    <tool_call>{...}</tool_call>                           Hermes / Qwen tags (unclosed at the end too)
    <function=NAME>{...}</function>                        Llama 3.1 style
    {"final_answer": "..."} / {"action": "Final Answer", "action_input": "..."}   a final answer

Names are matched exactly, then through the OpenAI-safe form (`math__calculate`), then
case-insensitively, then by a unique action suffix (`calculate`). Every call is validated against
its tool's schema. Anything wrong (unknown tool, bad JSON inside a call, arguments failing the
schema, no call when one was required) becomes `parse_error` with a message the model can act on;
nothing here raises. A batch with any bad call yields no calls at all, so that the model redoes the
whole batch rather than having part of it silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import best_match

from toolkit.interop.openai_schema import to_openai_name
from toolkit.schema_validation import schema_validator, validation_errors
from toolkit.types import LLMResponse, ToolCall, ToolSpec

NAME_KEYS = ("name", "tool", "tool_name", "action", "function", "recipient_name")
ARG_KEYS = ("arguments", "args", "parameters", "input", "action_input", "tool_input", "kwargs")
FINAL_KEYS = ("final_answer", "finalAnswer", "answer", "final")
FINAL_NAMES = {"final_answer", "final answer", "finalanswer", "answer", "finish", "respond"}
MAX_TEXT = 200_000  # longer outputs are cut before parsing: no pathological scans
MAX_CALLS = 64
MAX_DEPTH = 64  # arguments deeper than this are refused (serialisers have recursion limits too)

_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_FUNCTION_TAG = re.compile(r"<function=([\w.\-]+)>(.*?)(?:</function>|\Z)", re.S)
_FENCE = re.compile(r"```[ \t]*([\w\-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_PREFIXES = ("[TOOL_CALLS]", "<|python_tag|>", "<tool_call>", "Action:", "ACTION:")


@dataclass
class ParsedOutput:
    """What the text meant: calls, or a final answer in `text`, or an error to show the model."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None

    def to_response(self, **fields: Any) -> LLMResponse:
        if self.calls and "finish_reason" not in fields:
            fields["finish_reason"] = "tool_calls"
        return LLMResponse(text=self.text, tool_calls=self.calls, parse_error=self.error, **fields)


class _Invalid(Exception):
    """A call-shaped thing that can't become a call; the message goes to the model."""


def clean_text(text: Any) -> str:
    """A str with lone surrogates replaced, so traces and HTTP bodies can always encode it."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _clean_json(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _Invalid(f"arguments are nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): _clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v, depth + 1) for v in value]
    return value


def loads(text: str) -> Any:
    """json.loads that raises only _Invalid (huge ints and deep nesting raise other errors).
    Not strict: models often put raw newlines or tabs inside strings (code, multi-line text)."""
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"invalid JSON ({str(exc)[:120]})") from None


class ToolIndex:
    """Resolves the names a model writes to our qualified names, and validates arguments."""

    def __init__(self, tools: list[ToolSpec], aliases: dict[str, str] | None = None):
        self.specs = {t.name: t for t in tools}
        self.aliases: dict[str, str] = {}
        for t in tools:
            self.aliases.setdefault(to_openai_name(t.name), t.name)
            self.aliases.setdefault(t.name.lower(), t.name)
        self.aliases.update(aliases or {})
        suffixes: dict[str, list[str]] = {}
        for t in tools:
            suffixes.setdefault(t.name.rsplit(".", 1)[-1].lower(), []).append(t.name)
        for short, names in suffixes.items():
            if len(names) == 1:
                self.aliases.setdefault(short, names[0])
        self._validators: dict[str, Any] = {}

    def resolve(self, name: Any) -> str | None:
        if not isinstance(name, str):
            return None
        name = name.strip()
        if name in self.specs:
            return name
        return self.aliases.get(name) or self.aliases.get(name.lower())

    def known(self) -> str:
        names = sorted(self.specs)
        return ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")

    def validate(self, name: str, arguments: dict[str, Any]) -> None:
        if name not in self._validators:
            try:
                self._validators[name] = schema_validator(self.specs[name].parameters)
            except Exception:  # noqa: BLE001 - a broken schema is the executor's to report
                self._validators[name] = None
        validator = self._validators[name]
        if validator is None:
            return
        error = best_match(validation_errors(validator, arguments))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            raise _Invalid(f"arguments of {name} don't match its schema at {where}: {error.message[:300]}")


# --- one object -> a call, a final answer or nothing -------------------------------------------


def _name_and_args(obj: dict[str, Any]) -> tuple[Any, Any, bool] | None:
    """(name, arguments, has_arguments_key) of a call-shaped object, else None."""
    inner = obj.get("function") if isinstance(obj.get("function"), dict) else obj.get("function_call")
    if isinstance(inner, dict):  # OpenAI {"type": "function", "function": {...}} / legacy function_call
        obj = inner
    name = next((obj[k] for k in NAME_KEYS if k in obj and isinstance(obj[k], (str, int, float, type(None)))), None)
    if name is None and not any(k in obj for k in NAME_KEYS):
        return None
    arg_key = next((k for k in ARG_KEYS if k in obj), None)
    return name, obj.get(arg_key) if arg_key else None, arg_key is not None


def _final_answer(obj: dict[str, Any], index: ToolIndex) -> str | None:
    for key in FINAL_KEYS:
        if key in obj and len(obj) == 1:
            return _as_text(obj[key])
    shape = _name_and_args(obj)
    if shape and isinstance(shape[0], str) and shape[0].strip().lower() in FINAL_NAMES and not index.resolve(shape[0]):
        args = shape[1]
        if isinstance(args, dict):
            args = next((args[k] for k in ("answer", "text", "content", "final_answer", "response") if k in args), args)
        return _as_text(args)
    return None


def _as_text(value: Any) -> str:
    return clean_text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))


def _arguments(name: str, raw: Any, index: ToolIndex) -> dict[str, Any]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raw = {}  # no arguments: still validated (required parameters)
    if isinstance(raw, str):
        stripped = raw.strip()
        try:
            raw = loads(stripped)
        except _Invalid:
            # a bare string for a tool with one string parameter: small models often do this
            props = index.specs[name].parameters.get("properties") or {}
            one_string = len(props) == 1 and (next(iter(props.values())) or {}).get("type") == "string"
            if one_string and not stripped.startswith(("{", "[")):  # broken JSON stays an error
                raw = {next(iter(props)): raw}
            else:
                raise _Invalid(f"arguments of {name} are not a JSON object: {stripped[:80]!r}") from None
    if not isinstance(raw, dict):
        raise _Invalid(f"arguments of {name} must be a JSON object, got {type(raw).__name__}")
    args = _clean_json(raw)
    index.validate(name, args)
    return args


def call_from_object(obj: dict[str, Any], index: ToolIndex, call_id: str | None = None) -> ToolCall:
    """One call-shaped object -> a validated ToolCall; raises _Invalid with the reason."""
    shape = _name_and_args(obj)
    if shape is None:
        raise _Invalid("a tool call needs a 'name'")
    name = index.resolve(shape[0])
    if name is None:
        shown = clean_text(shape[0])[:80] if isinstance(shape[0], str) else repr(shape[0])[:80]
        raise _Invalid(f"unknown tool {shown!r}; available: {index.known()}")
    args = _arguments(name, shape[1], index)
    return ToolCall(id=call_id, name=name, arguments=args) if call_id else ToolCall(name=name, arguments=args)


def _is_call_shaped(obj: Any, index: ToolIndex) -> bool:
    """A name key plus an arguments key, or a name we know: `{"name": "Bob", "age": 3}` is data."""
    if isinstance(obj, list):
        return bool(obj) and all(_is_call_shaped(o, index) for o in obj)
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("tool_calls"), list):
        return True
    shape = _name_and_args(obj)
    return shape is not None and (shape[2] or index.resolve(shape[0]) is not None)


def _objects(value: Any) -> list[Any]:
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        return value["tool_calls"]
    return value if isinstance(value, list) else [value]


# --- finding JSON in text -------------------------------------------------------------------

_DECODER = json.JSONDecoder(strict=False)


def _decode_prefix(text: str) -> tuple[Any, int] | None:
    try:
        return _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return None


def _json_error(text: str) -> str:
    try:
        loads(text)
    except _Invalid as exc:
        return str(exc)
    return "invalid JSON (text after the call?)"


def _looks_like_call_attempt(text: str) -> bool:
    head = text.lstrip()[:1]
    return head in ("{", "[") and re.search(r'"(name|tool|tool_name|function|action)"\s*:', text[:2000]) is not None


@dataclass
class _Found:
    objects: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rest: str = ""  # the text around the calls (the model's thought)


def _find(text: str, index: ToolIndex) -> _Found:
    found = _Found(rest=text)
    for pattern in (_TAG, _FUNCTION_TAG):
        matches = list(pattern.finditer(text))
        if not matches:
            continue
        for m in matches[:MAX_CALLS]:
            try:
                if pattern is _TAG:
                    found.objects.extend(_objects(loads(m.group(1).strip())))
                else:
                    body = m.group(2).strip()
                    found.objects.append({"name": m.group(1), "arguments": loads(body) if body else {}})
            except _Invalid as exc:
                found.errors.append(f"{exc} in a tool-call tag: {clean_text(m.group(0))[:120]!r}")
        found.rest = pattern.sub("", text).strip()
        return found
    for m in list(_FENCE.finditer(text))[:MAX_CALLS]:
        lang, body = m.group(1).lower(), m.group(2).strip()
        decoded = _decode_prefix(body)
        if decoded is not None and _is_call_shaped(decoded[0], index):
            found.objects.extend(_objects(decoded[0]))
            found.rest = found.rest.replace(m.group(0), "", 1)
        elif decoded is None and lang in ("json", "tool_call", "tool_code", "") and _looks_like_call_attempt(body):
            found.errors.append(f"invalid JSON in a fenced tool call: {clean_text(body)[:120]!r}")
    if found.objects or found.errors:
        found.rest = found.rest.strip()
        return found
    return _find_bare(text, index, found)


def _find_bare(text: str, index: ToolIndex, found: _Found) -> _Found:
    stripped = text.strip()
    for prefix in _PREFIXES:
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix) :].lstrip()
    # the first few JSON starts: a call after a sentence of thought, or the whole output
    for i, m in enumerate(re.finditer(r"[\[{]", stripped)):
        if i >= 20:
            break
        decoded = _decode_prefix(stripped[m.start() :])
        if decoded is None:
            if m.start() == 0 and _looks_like_call_attempt(stripped):
                found.errors.append(f"{_json_error(stripped)} in a tool call: {clean_text(stripped)[:120]!r}")
                return found
            continue
        value, end = decoded
        if _is_call_shaped(value, index) or (isinstance(value, dict) and _final_answer(value, index) is not None):
            found.objects.extend(_objects(value))
            found.rest = (stripped[: m.start()] + stripped[m.start() + end :]).strip()
            return found
    return found


# --- entry points ---------------------------------------------------------------------------


def _calls_or_error(objects: list[Any], index: ToolIndex, errors: list[str]) -> tuple[list[ToolCall], str | None]:
    calls: list[ToolCall] = []
    if len(objects) > MAX_CALLS:
        errors.append(f"too many tool calls at once ({len(objects)}; at most {MAX_CALLS})")
        objects = objects[:MAX_CALLS]
    for obj in objects:
        try:
            if not isinstance(obj, dict):
                raise _Invalid(f"a tool call must be a JSON object, got {type(obj).__name__}")
            calls.append(call_from_object(obj, index, _call_id(obj)))
        except _Invalid as exc:
            errors.append(str(exc))
    if errors:
        return [], "; ".join(errors)
    return calls, None


def _call_id(obj: dict[str, Any]) -> str | None:
    cid = obj.get("id") or obj.get("call_id")
    return clean_text(cid)[:64] if isinstance(cid, str) and cid.strip() else None


def parse_model_output(
    text: Any,
    tools: list[ToolSpec],
    *,
    tool_choice: str = "auto",
    aliases: dict[str, str] | None = None,
) -> ParsedOutput:
    """Text as a model wrote it -> calls (validated), a final answer, or a parse error. Never raises."""
    text = clean_text(text)
    if not tools or tool_choice == "none":
        return ParsedOutput(text=text)
    try:
        return _parse(text, ToolIndex(tools, aliases), tool_choice)
    except (RecursionError, ValueError) as exc:  # deep nesting, huge numbers: the model's fault
        return ParsedOutput(text=text, error=f"the output could not be read as a tool call ({type(exc).__name__})")


def _parse(text: str, index: ToolIndex, tool_choice: str) -> ParsedOutput:
    found = _find(text[:MAX_TEXT], index)
    finals: list[str] = []
    objects: list[Any] = []
    for obj in found.objects:
        answer = _final_answer(obj, index) if isinstance(obj, dict) else None
        if answer is None:
            objects.append(obj)
        else:
            finals.append(answer)
    if finals and not objects and not found.errors:
        return _require(ParsedOutput(text=finals[0]), tool_choice)
    if not objects and not found.errors:
        return _require(ParsedOutput(text=text), tool_choice)
    calls, error = _calls_or_error(objects, index, list(found.errors))
    if error:
        return ParsedOutput(text=text, error=error)
    return ParsedOutput(text=found.rest, calls=calls)


def _require(parsed: ParsedOutput, tool_choice: str) -> ParsedOutput:
    if tool_choice not in ("auto", "none") and not parsed.calls and not parsed.error:
        wanted = "a tool call" if tool_choice == "required" else f"a call of {tool_choice}"
        parsed.error = f"{wanted} was required but the reply had none"
    return parsed


def parse_native_calls(
    raw_calls: list[Any],
    tools: list[ToolSpec],
    *,
    text: Any = "",
    aliases: dict[str, str] | None = None,
) -> ParsedOutput:
    """Calls a server or library returned as structures (OpenAI `tool_calls`, LangChain
    `{"name", "args", "id"}`) -> validated ToolCalls, with the same errors as text parsing."""
    index = ToolIndex(tools, aliases)
    objects = list(raw_calls) if isinstance(raw_calls, list) else [raw_calls]
    try:
        calls, error = _calls_or_error(objects, index, [])
    except (RecursionError, ValueError) as exc:
        calls, error = [], f"tool calls could not be read ({type(exc).__name__})"
    return ParsedOutput(text=clean_text(text), calls=calls, error=error)
