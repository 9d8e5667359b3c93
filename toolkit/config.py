"""User configuration: a YAML file, overridden by environment variables, overridden by flags.

File: `$TOOLKIT_CONFIG`, else `$TOOLKIT_HOME/config.yaml`, else `~/.config/toolkit/config.yaml`.

    model: llamacpp:default          # TOOLKIT_MODEL
    tools_path: [~/my_tools]         # TOOLKIT_TOOLS_PATH (os.pathsep-separated)
    approve: ask                     # TOOLKIT_APPROVE: ask | auto | deny
    max_steps: 10
    tools:                           # per-tool settings, merged over the manifest's `settings`
      search: {backend: local, index: ~/docs.idx}
      browser: {chromium_path: /usr/bin/chromium, allow_hosts: [127.0.0.1]}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from toolkit import safe_yaml


class ConfigError(Exception):
    pass


class Config(BaseModel):
    model: str | None = None
    tools_path: list[str] = Field(default_factory=list)
    approve: Literal["ask", "auto", "deny"] | None = None
    max_steps: int = 10
    tools: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tool_overrides: dict[str, Literal["ask", "auto", "deny"]] = Field(default_factory=dict)  # per-tool approval


def toolkit_home() -> Path:
    return Path(os.environ.get("TOOLKIT_HOME") or Path.home() / ".config" / "toolkit").expanduser()


def config_path() -> Path:
    return (
        Path(os.environ["TOOLKIT_CONFIG"]).expanduser()
        if os.environ.get("TOOLKIT_CONFIG")
        else toolkit_home() / "config.yaml"
    )


def user_tools_dir() -> Path:
    return toolkit_home() / "tools"


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = safe_yaml.load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded
    env = os.environ
    if env.get("TOOLKIT_MODEL"):
        data["model"] = env["TOOLKIT_MODEL"]
    if env.get("TOOLKIT_TOOLS_PATH"):
        data["tools_path"] = [
            *data.get("tools_path", []),
            *[p for p in env["TOOLKIT_TOOLS_PATH"].split(os.pathsep) if p],
        ]
    if env.get("TOOLKIT_APPROVE"):
        data["approve"] = env["TOOLKIT_APPROVE"]
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: /{'/'.join(map(str, first['loc']))}: {first['msg']}") from None
    config.tools_path = [str(Path(p).expanduser()) for p in config.tools_path]
    return config


def tool_folders(config: Config, extra: list[str] | None = None) -> list[Path]:
    """User folders to load manifests from, in order (the built-in folder comes first, separately)."""
    folders = [user_tools_dir()] if user_tools_dir().is_dir() else []
    folders += [Path(p) for p in config.tools_path]
    folders += [Path(p).expanduser() for p in extra or []]
    return folders
