"""Typed data that crosses module boundaries: calls, observations, model requests and responses.

Every planner, backend and tool binding speaks these types; nothing passes a dict of unknown
shape across a boundary (DESIGN.md, principle 2).
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def new_id(prefix: str = "call") -> str:
    # 48 random bits, as uuid4().hex[:12] gave, at a fifth of the cost: a call id is made per call
    return f"{prefix}_{os.urandom(6).hex()}"


class ErrorCode(str, Enum):
    """Why a tool call produced no result. Shown to the model so that it can correct itself."""

    unknown_tool = "unknown_tool"
    invalid_arguments = "invalid_arguments"
    timeout = "timeout"
    tool_error = "tool_error"
    unavailable = "unavailable"
    denied = "denied"
    cancelled = "cancelled"
    parse_error = "parse_error"
    invalid_output = "invalid_output"


class ToolCall(BaseModel):
    """One call of one action. `name` is the qualified action name, `tool.action`."""

    id: str = Field(default_factory=new_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Observation(BaseModel):
    """The outcome of one ToolCall: a result or an error code with a message."""

    call_id: str
    name: str
    ok: bool
    content: Any = None
    text: str = ""
    error: ErrorCode | None = None
    message: str | None = None
    truncated: bool = False
    duration_s: float = 0.0
    attempts: int = 1


Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(BaseModel):
    """What a model is told about one action: a function schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    examples: list[dict[str, Any]] = Field(default_factory=list)


class Constraint(BaseModel):
    """Restricts what a backend may generate. Backends that can't enforce it parse and validate."""

    kind: Literal["json_schema", "choice", "grammar"]
    json_schema: dict[str, Any] | None = None
    choices: list[str] | None = None
    grammar: str | None = None  # GBNF


class Sampling(BaseModel):
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    # In a tool turn, the most tokens a final answer in words may take (None: max_tokens; 0: stop
    # once the model has chosen to answer rather than call; other values count as at least 16, the
    # JSON around the words needs room). For callers that read only the calls, such as BFCL
    # scoring. Honoured by the llamacpp backend's two-stage tool turns.
    answer_max_tokens: int | None = Field(default=None, ge=0)


class LLMRequest(BaseModel):
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: Literal["auto", "required", "none"] | str = "auto"
    parallel_tool_calls: bool = True
    constraint: Constraint | None = None
    sampling: Sampling = Field(default_factory=Sampling)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Timings(BaseModel):
    total_s: float = 0.0
    ttft_s: float | None = None  # time to first token
    prefill_s: float | None = None
    decode_tokens_per_s: float | None = None


class LLMResponse(BaseModel):
    """What a backend returns. `parse_error` is set when output could not become calls."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: Literal["stop", "length", "tool_calls", "error"] = "stop"
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)
    parse_error: str | None = None


class Step(BaseModel):
    """One turn of a planner: what the model said, the calls it made and what came back."""

    index: int
    thought: str = ""
    calls: list[ToolCall] = Field(default_factory=list)
    observations: list[Observation] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = 0.0


EventKind = Literal[
    "task_start",
    "model_call",
    "plan",
    "call",
    "observation",
    "replan",
    "backtrack",
    "answer",
    "error",
    "task_end",
]


class TraceEvent(BaseModel):
    """One thing that happened during a task, timed from the task's start."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    t: float  # seconds since task start
    step: int | None = None
    text: str | None = None
    call: ToolCall | None = None
    observation: Observation | None = None
    usage: Usage | None = None
    timings: Timings | None = None
    plan: list[dict[str, Any]] | None = None  # steps of a DAG plan, as the planner's Plan dumps them
    node: str | None = None  # tree-search node id (dfsdt) or DAG step id
    parent: str | None = None


class TaskInput(BaseModel):
    """One task of a batch: what `Agent.arun_many` accepts besides a plain string, and one line of a
    batch's task file. `tools` and `max_steps` override the agent's for this task alone."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    task: str
    tools: list[str] | None = None
    max_steps: int | None = Field(default=None, ge=1)
    metadata: dict[str, Any] | None = None  # the caller's own data, copied to the result line


TaskStatus = Literal["ok", "error", "max_steps", "cancelled"]


class TaskResult(BaseModel):
    task_id: str
    task: str
    answer: str | None = None
    status: TaskStatus = "ok"
    error: str | None = None
    planner: str = "react"
    model: str = ""
    steps: list[Step] = Field(default_factory=list)
    trace: list[TraceEvent] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    wall_s: float = 0.0
    dry_run: bool = False  # the calls were recorded, not run (Agent(dry_run=True))

    @property
    def observations(self) -> list[Observation]:
        return [o for s in self.steps for o in s.observations]

    @property
    def calls(self) -> list[ToolCall]:
        return [c for s in self.steps for c in s.calls]
