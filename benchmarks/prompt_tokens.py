"""How many tokens the first prompt of a task costs the embedded model, as `toolkit run` builds it.

    python benchmarks/prompt_tokens.py [--model llamacpp:default] [--model llamacpp:PATH.gguf ...]
                                       [--task "What is 12 * (7 + 5)?"]

For each model: the react planner's first request for the task (the default registry, the tools
`toolkit run` offers), rendered in the model's tool format and tokenized; then the same with only
the `math` actions and only `math.calculate`. The baseline, in the same run: the request as the
planner made it before it stopped listing the tools in its system text for backends that show
them in their own format (the tools then reached the model twice). Prints tokens and the ratio.
Nothing is decoded: the figures do not depend on the machine's load. Prefill time is about tokens
divided by the model's prefill rate (docs/models.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.config import load_config, tool_folders  # noqa: E402
from toolkit.models import load_backend  # noqa: E402
from toolkit.planner.prompts import system_message  # noqa: E402
from toolkit.registry import ToolRegistry  # noqa: E402
from toolkit.runtime.agent import Agent  # noqa: E402
from toolkit.types import LLMRequest, Message  # noqa: E402


def first_request(agent: Agent, backend: object, task: str, tools: list) -> LLMRequest:
    messages = agent.planner.first_messages(SimpleNamespace(task=task, backend=backend), tools)
    return LLMRequest(messages=messages, tools=tools)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="a llamacpp/hf model string (repeatable)")
    parser.add_argument("--task", default="What is 12 * (7 + 5)?")
    args = parser.parse_args()
    config = load_config()
    registry = ToolRegistry.default(tool_folders(config), tool_settings=config.tools)
    agent = Agent(model="scripted:/dev/null", tools=registry, config=config)  # the planner and tool choice only
    tools = agent.tool_specs(args.task)
    subsets = {
        f"all {len(tools)} actions": tools,
        "math actions": [t for t in tools if t.name.startswith("math.")],
        "math.calculate": [t for t in tools if t.name == "math.calculate"],
    }
    print(f"task: {args.task!r}")
    for model in args.model or ["llamacpp:default"]:
        backend = load_backend(model, n_ctx=8192)
        try:
            print(f"{backend.name} ({backend.tool_format.name} tool format)")
            for label, offered in subsets.items():
                now = len(backend.prompt_tokens(first_request(agent, backend, args.task, offered), with_tools=True))
                listed = LLMRequest(
                    messages=[system_message(offered), Message(role="user", content=args.task)], tools=offered
                )
                before = len(backend.prompt_tokens(listed, with_tools=True))
                print(
                    f"  {label:18s} {now:6,d} tokens; tools also in the system text: {before:6,d}; {now / before:.2f}x"
                )
        finally:
            asyncio.run(backend.aclose())


if __name__ == "__main__":
    main()
