"""JSON Schema validation that a schema cannot turn against the engine.

Schemas come from manifests, OpenAPI specs and MCP servers, and are checked against what a model
wrote, inside the event loop. So:

- no `$ref` is ever fetched: the validators resolve against a registry whose retrieval refuses,
  and `schema_problems` rejects a non-local `$ref` (or a nested `$schema`, which would switch a
  subschema to a validator class without the guards below) when a manifest is loaded;
- `pattern` and `patternProperties` match with the `regex` engine under a time bound (per match
  and per validation), so a catastrophic-backtracking pattern costs at most that bound and the
  argument is refused, rather than blocking every task of the process for seconds.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from typing import Any

import regex
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.exceptions import NoSuchResource

PATTERN_TIMEOUT_S = 0.05  # one match
VALIDATION_BUDGET_S = 0.25  # all the matches of one validation
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_DATA_KEYWORDS = ("const", "enum", "default", "examples")  # hold instances, not schemas

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("schema_deadline", default=None)


class PatternTimeout(ValidationError):
    """A pattern could not be matched within its time bound; the value is refused."""


def _refuse_retrieval(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class mypy reads without the plugin


NO_RETRIEVAL: Registry = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


def _search(pattern: str, text: str) -> bool:
    deadline = _deadline.get()
    timeout = PATTERN_TIMEOUT_S
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            raise TimeoutError
    return regex.search(pattern, text, timeout=timeout) is not None


def _matches(pattern: str, text: str) -> bool | ValidationError:
    """Whether `pattern` is found in `text`, or the error that refuses the value."""
    try:
        return _search(pattern, text)
    except TimeoutError:
        return PatternTimeout(f"{text[:80]!r} could not be matched against the pattern {pattern!r} in time; refused")
    except regex.error as exc:
        return ValidationError(f"the schema's pattern {pattern!r} is not usable: {exc}")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    found = _matches(pattern, instance)
    if isinstance(found, ValidationError):
        yield found
    elif not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _matches(pattern, key)
            if isinstance(found, ValidationError):
                yield found
                return
            if found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


BoundedValidator = validators.extend(
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def schema_validator(schema: dict[str, Any] | bool) -> Any:
    """A draft 2020-12 validator that never fetches a `$ref` and bounds its pattern matching."""
    return BoundedValidator(schema, registry=NO_RETRIEVAL)


def validation_errors(validator: Any, instance: Any, budget_s: float = VALIDATION_BUDGET_S) -> list[ValidationError]:
    """Every error of `instance`, the pattern matches of this one validation sharing `budget_s`.
    A `$ref` that does not resolve is reported as an error of the schema, not raised."""
    token = _deadline.set(time.monotonic() + budget_s)
    try:
        return list(validator.iter_errors(instance))
    except RecursionError:
        return [ValidationError("the arguments are nested too deeply to check")]
    except Exception as exc:  # noqa: BLE001 - an unresolvable $ref and the like: the schema is broken
        return [ValidationError(f"the schema cannot be used: {type(exc).__name__}: {exc}")]
    finally:
        _deadline.reset(token)


def schema_problems(schema: Any, pointer: str = "") -> list[tuple[str, str]]:
    """(JSON pointer, message) for what a schema in a manifest may not hold: a `$ref` or
    `$dynamicRef` that is not local (`#...`), a `$schema` below the top or other than draft
    2020-12, a pattern the bounded engine cannot compile, a keyword made of words with no value
    (what YAML makes of the rest of an unquoted value after a comma in a flow mapping)."""
    problems: list[tuple[str, str]] = []
    _walk(schema, pointer, problems, top=True)
    return problems


def _walk(node: Any, pointer: str, problems: list[tuple[str, str]], top: bool = False) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{pointer}/{i}", problems)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
        if key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
            problems.append((here, f"only local references (`#...`) are allowed, not {value[:200]!r}"))
        elif key == "$schema" and isinstance(value, str) and (not top or value.rstrip("#") != DRAFT_2020_12):
            problems.append((here, f"only draft 2020-12 at the top of a schema, not {value[:200]!r}"))
        elif key == "pattern" and isinstance(value, str):
            _check_pattern(value, here, problems)
        elif key == "patternProperties" and isinstance(value, dict):
            for pattern in value:
                _check_pattern(str(pattern), here, problems)
        elif value is None and isinstance(key, str) and any(c.isspace() for c in key.strip()):
            # `{type: integer, description: Seed, random when omitted}` reads as a keyword "random when
            # omitted" with no value: the description was cut at the comma. (A property's schema is
            # never null, so a property name doesn't land here: check_schema refused it before.)
            problems.append((here, f"{key[:80]!r} has no value: quote the value before it, a comma ended it"))
        if key in _DATA_KEYWORDS:
            continue
        _walk(value, here, problems)


def _check_pattern(pattern: str, pointer: str, problems: list[tuple[str, str]]) -> None:
    try:
        regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        problems.append((pointer, f"not a usable pattern {pattern[:200]!r}: {exc}"))
