"""OpenAI function-calling schemas. OpenAI names allow only [a-zA-Z0-9_-]{1,64}, so the dot of
`tool.action` becomes `__`; `from_openai_name` maps a returned name back."""

from __future__ import annotations

import re
from typing import Any

from toolkit.types import ToolSpec

_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def to_openai_name(name: str) -> str:
    return _BAD.sub("_", name.replace(".", "__"))[:64]


def to_openai_tools(specs: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": to_openai_name(s.name), "description": s.description, "parameters": s.parameters},
        }
        for s in specs
    ]


def name_map(specs: list[ToolSpec]) -> dict[str, str]:
    """OpenAI-safe name -> our name, for mapping calls back."""
    return {to_openai_name(s.name): s.name for s in specs}
