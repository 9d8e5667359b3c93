"""Shared fixtures: evaluation data location, an isolated toolkit home, scripted backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def eval_data_dir() -> Path:
    return Path(os.environ.get("TOOLKIT_EVAL_DATA") or REPO.parent / "shared" / "evaldata")


@pytest.fixture(scope="session")
def evaldata() -> Path:
    path = eval_data_dir()
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path}; set TOOLKIT_EVAL_DATA")
    return path


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """No user config, user tools or env overrides leak into a test."""
    home = tmp_path_factory.mktemp("toolkit_home")
    monkeypatch.setenv("TOOLKIT_HOME", str(home))
    for var in ("TOOLKIT_CONFIG", "TOOLKIT_MODEL", "TOOLKIT_TOOLS_PATH", "TOOLKIT_APPROVE"):
        monkeypatch.delenv(var, raising=False)
    return home
