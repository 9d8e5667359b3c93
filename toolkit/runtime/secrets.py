"""Secrets never leave the process in text we produce: the values of the variables a tool sends
(its `auth.env`, the `${VAR}`s of its headers and MCP environment, the variable a setting like
`api_key_env` names) and the model backend's key are replaced by `[REDACTED:VAR]`.

A Redactor works on text as it is rendered, so it looks for each secret in the forms rendering
gives it, not only verbatim:

- trimmed: the value without surrounding whitespace (a key read from a file keeps its newline,
  and comes back without it, or as `\\n`, inside an error message);
- escaped: JSON (`\\"`, `\\\\`, `\\uXXXX`, and JSON inside JSON), Python's repr, HTML entities;
- encoded: percent-encoding (`quote`, `quote_plus`), hex, and base64 (standard and URL-safe, at
  each of the three alignments a secret can have inside a longer encoded string, as in
  `Basic base64(user:key)`), any letter case;
- split: any fragment of a form that is `FRAGMENT_SURE` (11) characters or longer, wherever it
  stands, and shorter ones down to `FRAGMENT_MIN` (8) when they happen to fall on the scan's grid.

Not covered: fragments shorter than that (a key cut into pieces of a few characters), other
encodings (base32, compression, encryption, a key spelt backwards), and base64 or hex of a
fragment or of an escaped form.

Speed matters: the executor redacts every observation. Whole forms are found with `str.find`;
fragments by cutting the text into `GRID`-character chunks (one C call) and intersecting them
with the set of every `GRID`-gram of every form (another), then widening each hit by comparing
characters. Text without a secret costs a few C scans.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

from pydantic import BaseModel

MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words
GRID = 6  # chunk size of the fragment scan
FRAGMENT_MIN = 8  # a shorter match is not redacted (chance collisions with ordinary text)
FRAGMENT_SURE = 2 * GRID - 1  # a fragment this long always contains a whole chunk of the grid
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_CHUNKS = re.compile(f".{{{GRID}}}", re.DOTALL)
M = TypeVar("M", bound=BaseModel)


def rendered_forms(secret: str) -> set[str]:
    """The texts `secret` may become on its way out, lower-cased (matching ignores ASCII case)."""
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(json.dumps(secret, ensure_ascii=False)[1:-1], ensure_ascii=False)[1:-1],
        json.dumps(json.dumps(secret)[1:-1])[1:-1],
        repr(secret)[1:-1],
        html.escape(secret, quote=True),
        html.escape(secret, quote=True).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        raw.hex(),
    }
    for shift in range(3):  # the secret's first byte at each position of a base64 group
        aligned = raw[shift:][: (len(raw) - shift) // 3 * 3]
        if len(aligned) >= 6:
            forms.add(base64.b64encode(aligned).decode().rstrip("="))
            forms.add(base64.urlsafe_b64encode(aligned).decode().rstrip("="))
    return {f.translate(_ASCII_LOWER) for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Redactor:
    def __init__(self, secrets: Mapping[str, str]):
        self._forms: list[tuple[str, str]] = []  # (form, variable name), longest first
        self._grams: dict[str, list[tuple[str, int, str]]] = {}  # chunk -> (form, offset, name)
        seen: set[str] = set()
        for name, value in sorted(secrets.items()):
            core = (value or "").strip()
            if len(core) < MIN_SECRET_LENGTH:
                continue
            for form in rendered_forms(core):
                if form in seen:
                    continue
                seen.add(form)
                self._forms.append((form, name))
                for i in range(len(form) - GRID + 1):
                    self._grams.setdefault(form[i : i + GRID], []).append((form, i, name))
        self._forms.sort(key=lambda item: -len(item[0]))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        if not self._forms or not text:
            return text
        low = text.translate(_ASCII_LOWER)  # one character to one: positions stay the same
        spans = self._whole_forms(low) + self._fragments(low)
        if not spans:
            return text
        return _replace(text, spans)

    def _whole_forms(self, low: str) -> list[tuple[int, int, str]]:
        spans = []
        for form, name in self._forms:
            at = low.find(form)
            while at != -1:
                spans.append((at, at + len(form), name))
                at = low.find(form, at + len(form))
        return spans

    def _fragments(self, low: str) -> list[tuple[int, int, str]]:
        if not self._grams:
            return []
        chunks = _CHUNKS.findall(low)
        if self._grams.keys().isdisjoint(chunks):
            return []
        spans = []
        for index, chunk in enumerate(chunks):
            for form, offset, name in self._grams.get(chunk, ()):
                start, end = index * GRID, index * GRID + GRID
                while start > 0 and offset - (index * GRID - start) > 0:
                    if low[start - 1] != form[offset - (index * GRID - start) - 1]:
                        break
                    start -= 1
                tail = offset + GRID
                while end < len(low) and tail < len(form) and low[end] == form[tail]:
                    end, tail = end + 1, tail + 1
                if end - start >= FRAGMENT_MIN:
                    spans.append((start, end, name))
        return spans


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    """One label per run of overlapping or touching spans, named after the run's first secret."""
    spans.sort()
    pieces: list[str] = []
    last = 0
    for start, end, name in spans:
        if start > last or not pieces:
            pieces.append(text[last:start])
            pieces.append(f"[REDACTED:{name}]")
            last = end
        elif end > last:  # overlaps (or touches) the run being redacted: widen it
            last = end
    pieces.append(text[last:])
    return "".join(pieces)


def redact_data(redact: Callable[[str], str], value: Any) -> Any:
    """Every string in a JSON-like structure (dict keys included) passed through `redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_data(redact, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(redact, v) for v in value]
    return value


def redact_model(redact: Callable[[str], str] | None, model: M) -> M:
    """A copy of a pydantic model (a TaskResult, a TraceEvent...) with every string redacted;
    the model itself when there is nothing to redact."""
    if not redact:
        return model
    return type(model).model_validate(redact_data(redact, model.model_dump(mode="json")))


def redactor_for(env_names: Iterable[str], environ: Mapping[str, str] | None = None) -> Redactor:
    environ = os.environ if environ is None else environ
    return Redactor({name: environ.get(name, "") for name in env_names})
