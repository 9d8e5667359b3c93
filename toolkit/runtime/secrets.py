"""Secrets never leave the process in text we produce: the values of every tool's `auth.env`
variables are replaced by `[REDACTED:VAR]` in observations, errors, answers and trace text."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words


class Redactor:
    def __init__(self, secrets: Mapping[str, str]):
        # longest first, so a secret that contains another is replaced whole
        items = sorted(
            ((v, k) for k, v in secrets.items() if v and len(v) >= MIN_SECRET_LENGTH), key=lambda x: -len(x[0])
        )
        self._names = {v: k for v, k in items}
        self._pattern = re.compile("|".join(re.escape(v) for v, _ in items)) if items else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: f"[REDACTED:{self._names[m.group(0)]}]", text)


def redactor_for(env_names: Iterable[str], environ: Mapping[str, str] | None = None) -> Redactor:
    environ = os.environ if environ is None else environ
    return Redactor({name: environ.get(name, "") for name in env_names})
