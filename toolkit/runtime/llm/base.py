"""The backend protocol every model source implements.

Batching lives inside a backend: many agents awaiting `generate` at once is what fills a batch.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from toolkit.types import LLMRequest, LLMResponse


class Capabilities(BaseModel):
    constrained: bool = False  # enforces Constraint (JSON schema / choice / grammar) while decoding
    native_tools: bool = False  # returns tool calls itself (server-side parsing or grammar)
    batching: bool = False  # decodes concurrent requests together
    scoring: bool = False  # can score candidate continuations by log-likelihood


class BackendError(Exception):
    """A backend failed in a way retrying the same request won't fix (bad key, model missing...)."""


@runtime_checkable
class Backend(Protocol):
    name: str
    capabilities: Capabilities

    async def generate(self, request: LLMRequest) -> LLMResponse: ...

    async def aclose(self) -> None: ...
