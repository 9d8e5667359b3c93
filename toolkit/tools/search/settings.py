"""The search tool's settings: the manifest's `settings`, overridden by the user's config
(`tools: {search: {...}}`). The defaults here are the ones tool_manifests/search.yaml documents
(a test keeps the two in step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from toolkit.tools.search.results import SearchError

OnlineBackend = Literal["searxng", "ddg", "wikipedia"]
BackendName = Literal["auto", "local", "searxng", "ddg", "wikipedia"]


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: BackendName = Field(
        "auto", description="auto: the local index if one is set, else the online backends in order."
    )
    index: str | None = Field(None, description="A local index file built by `toolkit index build`.")
    online_backends: list[OnlineBackend] = Field(
        default_factory=lambda: list[OnlineBackend](["searxng", "ddg", "wikipedia"]),
        description="Online backends tried in order by `auto`; searxng is skipped while searxng_url is unset.",
    )
    searxng_url: str | None = Field(None, description="Base URL of a SearxNG instance with the json format enabled.")
    wikipedia_url: str = Field("https://en.wikipedia.org", description="Base URL of a MediaWiki site (its /w/api.php).")
    ddg_region: str = Field("wt-wt", description="DuckDuckGo region (wt-wt: none).")
    ddg_engines: str = Field("duckduckgo", description="ddgs engines, comma-separated, or auto (all it knows).")
    ddg_safesearch: Literal["on", "moderate", "off"] = "moderate"
    timeout_s: float = Field(10.0, gt=0, description="Per-backend request timeout.")
    max_k: int = Field(20, ge=1, description="Upper bound on the number of results asked for.")

    def index_path(self) -> Path | None:
        return Path(self.index).expanduser() if self.index else None


def parse_settings(raw: dict[str, Any] | None) -> SearchSettings:
    """Settings from a merged mapping; a typo or a bad value is a clear error, not a silent default."""
    try:
        return SearchSettings.model_validate({k: v for k, v in (raw or {}).items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = "/".join(map(str, first["loc"])) or "(settings)"
        raise SearchError(f"search settings: {where}: {first['msg']}") from None
