"""The browser tool's settings (manifest `settings`, overridden by the user's config
`tools: {browser: {...}}`). The defaults here are those tool_manifests/browser.yaml documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class BrowserSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chromium_path: str = Field("/usr/bin/chromium", description="The Chromium (or Chrome) executable.")
    headless: bool = True
    extra_args: list[str] = Field(default_factory=list, description="More Chromium command-line flags.")
    chromium_sandbox: bool | None = Field(
        None,
        description="Chromium's own sandbox: null = on where the kernel allows it, else off with a warning; "
        "true = required (the launch fails without it); false = off.",
    )
    chromium_user: str = Field(
        "nobody", description="When toolkit runs as root, Chromium runs as this user (root refuses the sandbox)."
    )
    window_chars: int = Field(1200, ge=200, description="About this many characters of page text per window.")
    navigation_timeout_s: float = Field(20.0, gt=0, description="A page that has not loaded by then fails.")
    allow_hosts: list[str] = Field(
        default_factory=list, description="Hosts (names or IPs) allowed even when private or loopback."
    )
    allow_private: bool = Field(False, description="Allow private, loopback and link-local addresses.")
    allow_file_urls: bool = Field(
        False, description="Allow open/fetch of file:// URLs (results of a local index always load)."
    )
    max_results: int = Field(8, ge=1, le=20, description="How many search results the results list keeps.")
    search: dict[str, Any] = Field(default_factory=dict, description="Search settings over those of the search tool.")


def parse_settings(raw: dict[str, Any] | None) -> BrowserSettings:
    try:
        return BrowserSettings.model_validate({k: v for k, v in (raw or {}).items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ValueError(f"browser settings: {'/'.join(map(str, first['loc']))}: {first['msg']}") from None
