"""Shared fixtures: evaluation data location, an isolated toolkit home, the embedded model's file and
Chromium; and the test tiers.

Tiers (markers declared in pyproject.toml): `llama` needs the embedded GGUF model, `browser` needs
Chromium, `slow` takes more than a few seconds (the 10,000-example fuzz runs). The fast tier for
everyday work is `python -m pytest -m "not slow and not llama and not browser"`; CI runs them all.
A test that uses the `gguf_model` or `chromium` fixture, directly or through another fixture, is
marked by `pytest_collection_modifyitems` below, so a new test lands in its tier without anyone
remembering to mark it; a test that loads the model or starts Chromium some other way is marked by hand.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# fixture -> the tier of every test that uses it
FIXTURE_TIERS = {"gguf_model": "llama", "chromium": "browser"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = getattr(item, "fixturenames", ())  # the whole closure: fixtures of fixtures too
        for fixture, tier in FIXTURE_TIERS.items():
            if fixture in used:
                item.add_marker(tier)


@pytest.fixture(scope="session")
def gguf_model() -> Path:
    """The embedded default model's GGUF file (assembled and re-encoded on first use)."""
    pytest.importorskip("llama_cpp")
    from toolkit.models.llamacpp.files import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable the browser tool uses by default."""
    from toolkit.tools.browser.settings import BrowserSettings

    path = shutil.which(BrowserSettings().chromium_path)
    if path is None:
        pytest.skip(f"Chromium not found at {BrowserSettings().chromium_path}")
    return path


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
