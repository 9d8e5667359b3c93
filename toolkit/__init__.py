"""toolkit: a tool-learning agent engine.

from toolkit import Agent, tool

@tool
def add(a: int, b: int) -> int:
    "Add two integers."
    return a + b

result = Agent(tools=[add]).run("What is 2 + 3?")
"""

from toolkit.decorators import tool
from toolkit.manifest import Manifest, ManifestError, load_manifest
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.types import LLMRequest, LLMResponse, Observation, TaskResult, ToolCall

__version__ = "0.1.0"
__all__ = [
    "Agent",
    "LLMRequest",
    "LLMResponse",
    "Manifest",
    "ManifestError",
    "Observation",
    "TaskResult",
    "ToolCall",
    "ToolRegistry",
    "load_manifest",
    "tool",
]
