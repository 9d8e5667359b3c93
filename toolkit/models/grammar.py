"""GBNF grammars for constrained decoding: JSON schemas (sanitised), choices, a generic JSON object.

llama.cpp's json-schema-to-grammar converter (the Python port in `llama_cpp.llama_grammar`)
handles the common subset of JSON Schema. Tool schemas in the wild carry things it chokes on or
turns into enormous grammars (regex `pattern`s, `format: uri`, `maxLength: 10000`, BFCL's
non-standard types `dict`/`float`/`tuple`/`any`, `not`, remote `$ref`s). `sanitize_schema`
rewrites a schema into the subset that converts well; whatever still fails falls back to a generic
JSON object grammar, and the parsed call is validated against the original schema afterwards, so
a looser grammar can cost a retry but never an unparseable call.

Nothing here needs a model; `GrammarChecker` (used by the engine) asks llama.cpp whether a grammar
parses.
"""

from __future__ import annotations

import json
from typing import Any

# One character of a JSON string, named as llama.cpp's schema converter names it (`for_schema`
# bounds strings by rewriting `char*`), shared by every hand-written grammar.
JSON_CHAR_RULE = r"""char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"""

# A JSON object with any content: the fallback when a schema can't be converted.
JSON_OBJECT_GRAMMAR = (
    r"""
root ::= object
value ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" char* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,4})? ws
ws ::= " "?
""".strip()
    + "\n"
    + JSON_CHAR_RULE
)

# Types that BFCL's function docs (and some hand-written manifests) use instead of JSON Schema's.
_TYPE_ALIASES = {
    "dict": "object",
    "float": "number",
    "double": "number",
    "int": "integer",
    "long": "integer",
    "bool": "boolean",
    "str": "string",
    "tuple": "array",
    "list": "array",
    "any": None,
    "null": "null",
}
_JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
# Keywords the converter understands; everything else is dropped (descriptions, examples, ...).
_KEEP = {
    "type",
    "properties",
    "required",
    "items",
    "prefixItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "additionalProperties",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "$ref",
    "$defs",
    "definitions",
    "minLength",
    "maxLength",
}
_MAX_REPEAT = 16  # larger min/max counts expand into huge nested grammars: drop them
DEFAULT_MAX_ITEMS = 16  # arrays without maxItems: a looping model must still close the JSON
STRING_MAX_CHARS = 400  # a string argument's bound when a token budget is given
_MAX_DEPTH = 24


def _sanitize(node: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "type":
            types = value if isinstance(value, list) else [value]
            mapped = []
            for t in types:
                t = _TYPE_ALIASES.get(t, t) if isinstance(t, str) else None
                if t in _JSON_TYPES and t not in mapped:
                    mapped.append(t)
            if len(mapped) == 1:
                out["type"] = mapped[0]
            elif mapped and len(mapped) == len(types):
                out["type"] = mapped
            # an unknown or `any` type: leave untyped (any JSON value)
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {str(k): _sanitize(v, depth + 1) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            if isinstance(value, bool):
                out[key] = value
            elif isinstance(value, list):  # old tuple form of items
                out["prefixItems"] = [_sanitize(v, depth + 1) for v in value]
            else:
                out[key] = _sanitize(value, depth + 1)
        elif key in ("prefixItems", "anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [_sanitize(v, depth + 1) for v in value]
        elif key in ("$defs", "definitions") and isinstance(value, dict):
            out[key] = {str(k): _sanitize(v, depth + 1) for k, v in value.items()}
        elif key == "$ref":
            if isinstance(value, str) and value.startswith("#/"):
                out[key] = value  # local refs only: the converter never fetches
        elif key in ("minItems", "maxItems", "minLength", "maxLength"):
            if isinstance(value, int) and 0 <= value <= _MAX_REPEAT:
                out[key] = value
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(value, int) and not isinstance(value, bool):
                out[key] = value  # the converter builds digit rules for integer bounds only
        elif key == "required" and isinstance(value, list):
            out[key] = [str(v) for v in value if isinstance(v, str)]
        elif key == "enum" and isinstance(value, list) and value:
            out[key] = value
        elif key == "const":
            out[key] = value
    # numeric bounds only make sense on integers; on numbers the converter ignores or mangles them
    if out.get("type") != "integer":
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            out.pop(key, None)
    if out.get("type") == "array" and "maxItems" not in out:
        out["maxItems"] = max(DEFAULT_MAX_ITEMS, out.get("minItems", 0))
    if "properties" in out:
        out["required"] = [r for r in out.get("required", []) if r in out["properties"]]
        out.setdefault("type", "object")
    elif "required" in out:
        del out["required"]
    return out


def sanitize_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of `schema` restricted to what llama.cpp's converter turns into a sane grammar."""
    cleaned = _sanitize(schema or {}, 0)
    if (
        not cleaned.get("type")
        and "properties" not in cleaned
        and not any(k in cleaned for k in ("anyOf", "oneOf", "allOf", "$ref", "enum", "const"))
    ):
        cleaned["type"] = "object"
    return cleaned


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """The GBNF of a (sanitised) schema. Raises on schemas the converter can't handle."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(schema))


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def choice_gbnf(choices: list[str], suffix: str = "") -> str:
    """Exactly one of `choices`, followed by `suffix` (e.g. the closing quote of a JSON string)."""
    if not choices:
        raise ValueError("a choice constraint needs at least one choice")
    alternatives = " | ".join(gbnf_literal(c) for c in dict.fromkeys(choices))
    tail = f" {gbnf_literal(suffix)}" if suffix else ""
    return f"root ::= ({alternatives}){tail}"


def wrap_gbnf(inner: str, suffix: str) -> str:
    """`inner`'s language followed by the literal `suffix` (renames inner's root)."""
    lines = []
    for line in inner.splitlines():
        if line.startswith("root ::="):
            line = "toolkit-inner ::=" + line[len("root ::=") :]
        lines.append(line)
    return f"root ::= toolkit-inner {gbnf_literal(suffix)}\n" + "\n".join(lines)


class GrammarChecker:
    """Asks llama.cpp whether a GBNF grammar parses (the converter can emit rules it rejects),
    remembering answers. Built by the engine, which owns the vocab."""

    def __init__(self, vocab: Any):
        self._vocab = vocab
        self._ok: dict[str, bool] = {}

    def parses(self, grammar: str) -> bool:
        if grammar not in self._ok:
            import logging

            import llama_cpp
            from llama_cpp._logger import logger

            level = logger.level
            logger.setLevel(logging.CRITICAL + 1)  # the parse error is expected; don't print it
            try:
                sampler = llama_cpp.llama_sampler_init_grammar(self._vocab, grammar.encode(), b"root")
            finally:
                logger.setLevel(level)
            self._ok[grammar] = bool(sampler)
            if sampler:
                llama_cpp.llama_sampler_free(sampler)
        return self._ok[grammar]

    def for_schema(self, schema: dict[str, Any] | None, budget_tokens: int | None = None) -> tuple[str, bool]:
        """(grammar, exact): the schema's grammar, or the generic object grammar (exact=False).

        With `budget_tokens`, strings without a small maxLength are bounded so that the whole
        object fits in the budget even when every string runs to its limit: a small model stuck
        repeating itself inside a string still closes the JSON instead of hitting max_tokens.
        """
        cleaned = sanitize_schema(schema)
        try:
            grammar = schema_to_gbnf(cleaned)
        except Exception:  # noqa: BLE001 - the converter raises many types on odd schemas
            grammar = ""
        exact = bool(grammar) and self.parses(grammar)
        if not exact:
            grammar = JSON_OBJECT_GRAMMAR
        if budget_tokens:
            slots = max(_string_slots(cleaned, 0) if exact else 8, 1)
            # One character per token is the rate that holds for the junk a looping model writes
            # (SmolLM2 writes "_1_1_1..." and digits a token each; at the 2 characters per token
            # assumed before, such a string still ran past max_tokens). Keys and punctuation get
            # ~6 tokens a property.
            keys = len(cleaned.get("properties") or {}) if exact else 8
            limit = max(16, min(STRING_MAX_CHARS, (budget_tokens - 16 - 6 * keys) // slots))
            bounded = grammar.replace("char*", f"char{{0,{limit}}}")
            if bounded != grammar and self.parses(bounded):
                grammar = bounded
        return grammar, exact


def _string_slots(schema: Any, depth: int) -> int:
    """About how many unbounded strings an instance holds (a string inside an array counts 4)."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return 0
    kind = schema.get("type")
    if kind == "string" or (
        kind is None and not schema.get("properties") and "enum" not in schema and "const" not in schema
    ):
        return 1 if "maxLength" not in schema else 0
    if kind == "array":
        # counted as at most 4 items: bounding every item for 16 would starve ordinary strings
        return _string_slots(schema.get("items", {}), depth + 1) * min(int(schema.get("maxItems", 4)), 4)
    total = sum(_string_slots(v, depth + 1) for v in (schema.get("properties") or {}).values())
    for key in ("anyOf", "oneOf"):
        total += max((_string_slots(v, depth + 1) for v in schema.get(key, [])), default=0)
    return total
