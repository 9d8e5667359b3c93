"""JSON text that can always be written out as UTF-8, whatever strings it holds.

A Python str may hold a lone surrogate: JSON with "\\ud800" (from a model, a web service, a task
file) decodes to one, and UTF-8 cannot encode it, so writing such a line failed. A value holding
one is dumped with its non-ASCII characters escaped instead: still valid JSON, and read back as
the very same string. Every other value is dumped with `ensure_ascii=False`, as readable text.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any, **kwargs: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, **kwargs)
    return text


def dumps_line(value: Any, **kwargs: Any) -> bytes:
    """One JSONL line, newline included, as UTF-8 bytes."""
    return (dumps(value, **kwargs) + "\n").encode("utf-8")
