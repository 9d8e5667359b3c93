"""Manifest pinning: `toolkit tools lock` records each tool's content hash; a tool whose manifest
(or whose discovered action list: an MCP server's tools, an OpenAPI spec's operations) changed
since is refused until it is locked again. This stops a tool being swapped after approval."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, Field

from toolkit.config import toolkit_home
from toolkit.manifest import Manifest


class LockEntry(BaseModel):
    sha256: str
    source: str


class LockFile(BaseModel):
    version: int = 1
    tools: dict[str, LockEntry] = Field(default_factory=dict)

    def check(self, manifest: Manifest) -> str | None:
        """The reason to refuse this tool, or None when it matches its lock (or has none)."""
        entry = self.tools.get(manifest.name)
        if entry is None:
            return None
        digest = manifest_digest(manifest)
        if digest != entry.sha256:
            return (
                f"changed since it was locked (sha256 {digest[:12]}, locked {entry.sha256[:12]}); "
                f"review it, then re-approve with `toolkit tools lock {manifest.name}`"
            )
        return None


def default_lock_path() -> Path:
    return toolkit_home() / "tools.lock.json"


def manifest_digest(manifest: Manifest) -> str:
    """Hash of the tool as the engine will use it: every field, discovered actions included."""
    canonical = json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_lock(path: Path) -> LockFile | None:
    if not path.is_file():
        return None
    return LockFile.model_validate_json(path.read_text(encoding="utf-8"))


def write_lock(path: Path, lock: LockFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(lock.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
