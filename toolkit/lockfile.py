"""Tool pinning: `toolkit tools lock` records, for each tool, the hash of its manifest as the engine
uses it (discovered actions included: an MCP server's tools, an OpenAPI spec's operations) and
each action's destination, in the clear: where a call goes and what it carries (an http or
OpenAPI action's method, URL template and header templates with the variables they send; a
python action's function; an MCP action's server command, URL and tool). A tool whose manifest
or any destination changed since is refused, with the difference as the reason, until it is
locked again. This stops a tool being swapped after approval, including by the spec or server
it is discovered from (a new server URL would otherwise receive the tool's credentials)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from toolkit.config import toolkit_home
from toolkit.manifest import Manifest

Destinations = dict[str, dict[str, Any]]  # action name -> its destination


class LockEntry(BaseModel):
    sha256: str  # of the manifest as used
    source: str
    # None: locked while the tool was unavailable (or by toolkit < 2 of the lock format), so
    # where its calls go was never seen and can't be vouched for
    destinations: Destinations | None = None


class LockFile(BaseModel):
    version: int = 2
    tools: dict[str, LockEntry] = Field(default_factory=dict)

    def check(self, manifest: Manifest, destinations: Destinations | None = None) -> str | None:
        """The reason to refuse this tool, or None when it matches its lock (or has none).
        `destinations`: the tool's as bound now; None when it has no bindings (unavailable)."""
        entry = self.tools.get(manifest.name)
        if entry is None:
            return None
        relock = f"review it, then re-approve with `toolkit tools lock {manifest.name}`"
        changes = []
        if destinations is not None and entry.destinations is not None:
            changes = destination_changes(entry.destinations, destinations)
        digest = manifest_digest(manifest)
        if digest != entry.sha256:
            changes.append(f"manifest sha256 {digest[:12]}, locked {entry.sha256[:12]}")
        if changes:
            shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
            return f"changed since it was locked: {shown}; {relock}"
        if destinations is not None and entry.destinations is None:
            return f"locked without its destinations (it was unavailable, or locked by an older toolkit); {relock}"
        return None


def destination_changes(locked: Destinations, current: Destinations) -> list[str]:
    """One line per difference: `action: field 'old' -> 'new'`."""
    changes: list[str] = []
    for action in sorted(set(locked) | set(current)):
        before, after = locked.get(action), current.get(action)
        if before == after:
            continue
        if before is None or after is None:
            changes.append(f"action {action} {'added' if before is None else 'removed'}")
            continue
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(f"{action}: {key} {_short(before.get(key))} -> {_short(after.get(key))}")
    return changes


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:119] + "…"


def default_lock_path() -> Path:
    return toolkit_home() / "tools.lock.json"


def manifest_digest(manifest: Manifest) -> str:
    """Hash of the tool as the engine will use it: every field, discovered actions included."""
    canonical = json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class UnreadableLock(LockFile):
    """A lock file that exists but can't be read: nothing it pinned can be vouched for, so every
    tool is refused with the reason (fail closed), and no command ends in a traceback."""

    problem: str = ""

    def check(self, manifest: Manifest, destinations: Destinations | None = None) -> str | None:
        return f"the lock file is unreadable ({self.problem}); repair or delete it, then `toolkit tools lock`"


def read_lock(path: Path) -> LockFile | None:
    if not path.is_file():
        return None
    try:
        return LockFile.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).strip().splitlines()
        return UnreadableLock(problem=f"{path}: {first[0] if first else type(exc).__name__}"[:300])


def write_lock(path: Path, lock: LockFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    lock = lock.model_copy(update={"version": LockFile().version})
    tmp.write_text(lock.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
