"""The backend protocol every model source implements.

Batching lives inside a backend: many agents awaiting `generate` at once is what fills a batch.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
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


@runtime_checkable
class StreamingBackend(Protocol):
    """Optional: a backend that can yield its text as it is decoded (used by the DAG planner to
    dispatch plan steps before the plan is complete). Yields text chunks; it may end with one
    LLMResponse carrying the whole text, usage and timings. Check with `supports_streaming`.
    A consumer that has read enough may send True (`await stream.asend(True)`): a backend that
    can stop decoding does, and still ends with the LLMResponse of what it decoded; one that
    cannot ignores it."""

    def stream(self, request: LLMRequest) -> AsyncGenerator[str | LLMResponse, bool | None]: ...


@runtime_checkable
class ScoringBackend(Protocol):
    """Optional: a backend that ranks candidate continuations of the request's prompt by their
    log-likelihood (higher is likelier). Advertised by `capabilities.scoring`."""

    async def score(self, request: LLMRequest, candidates: list[str]) -> list[float]: ...


def supports_streaming(backend: object) -> bool:
    return callable(getattr(backend, "stream", None))


def supports_scoring(backend: object) -> bool:
    caps = getattr(backend, "capabilities", None)
    return bool(getattr(caps, "scoring", False)) and callable(getattr(backend, "score", None))
