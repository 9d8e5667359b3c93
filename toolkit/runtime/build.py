"""`build_agent`: the Agent as `toolkit run` builds it, from the same options.

`toolkit run` calls it, and so does every eval (`evals/`), so that what is scored is what users
run: the config's model and settings, the registry with its folders and lock, the approval
policy, the planner and its options, and the function definitions a dry run may be offered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit.config import Config, load_config, tool_folders
from toolkit.interop.functions import declare_functions
from toolkit.models import Backend
from toolkit.planner import Planner
from toolkit.registry import ToolRegistry
from toolkit.runtime.agent import Agent
from toolkit.runtime.batch import unknown_tools
from toolkit.runtime.policy import make_approver
from toolkit.types import TraceEvent


def build_agent(
    model: str | Backend | None = None,
    *,
    tools: list[str] | None = None,
    tools_path: list[str] | None = None,
    functions: list[Any] | None = None,
    planner: str | Planner = "react",
    planner_options: dict[str, Any] | None = None,
    max_steps: int | None = None,
    approve: str | None = None,
    dry_run: bool = False,
    tool_settings: dict[str, dict[str, Any]] | None = None,
    config: Config | None = None,
    on_event: Callable[[str, TraceEvent], None] | None = None,
) -> Agent:
    """The options of `toolkit run`, as keywords.

    model: a model string, or a loaded Backend (evals share one across many agents).
    tools: the tools or actions to offer (None: every available one).
    tools_path: extra folders of manifests, on top of the config's.
    functions: function definitions (OpenAI format) declared without an implementation
        (toolkit/interop/functions.py); offered whatever `tools` says, alone when it is None.
    approve: ask | auto | deny (None: the config's policy).
    tool_settings: per-tool settings over the config's (e.g. {"search": {"backend": "local"}}).
    Raises ConfigError / ValueError on bad options (an unknown tool name among them) (the CLI turns them into one line and exit 2).
    """
    config = config or load_config()
    settings = {**config.tools, **(tool_settings or {})}
    registry = ToolRegistry.default(tool_folders(config, tools_path), tool_settings=settings)
    missing = unknown_tools(registry, tools or [])
    if missing:
        raise ValueError(f"unknown tools: {', '.join(missing)} (see `toolkit tools list`)")
    if functions:
        declared = [t.name for t in declare_functions(registry, functions)]
        # the definitions are what the task is about: offered always, alone unless `tools` adds some
        tools = declared if tools is None else [*tools, *(t for t in declared if t not in tools)]
    return Agent(
        model=model,
        tools=registry,
        tool_names=tools,
        planner=planner,
        planner_options=planner_options,
        max_steps=max_steps,
        approver=make_approver(approve or config.approve, config.tool_overrides),  # type: ignore[arg-type]
        config=config,
        on_event=on_event,
        dry_run=dry_run,
    )
