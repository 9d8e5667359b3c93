"""Import a BMTools / ChatGPT plugin: `ai-plugin.json` plus its OpenAPI spec become a manifest
with an `openapi` binding. The spec's operations are listed as actions, so the manifest can be
read, edited and pinned like any other."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urljoin

import httpx

from toolkit.bindings import BindingError
from toolkit.bindings.openapi import openapi_bindings
from toolkit.manifest import Auth, Manifest, OpenAPIBinding


class PluginImportError(Exception):
    pass


def _load_json(location: str) -> tuple[dict, str | None]:
    if location.startswith(("http://", "https://")):
        try:
            response = httpx.get(location, timeout=30, follow_redirects=True)
            response.raise_for_status()
            return response.json(), location
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise PluginImportError(f"cannot fetch {location}: {exc}") from None
    try:
        return json.loads(Path(location).read_text(encoding="utf-8")), None
    except (OSError, json.JSONDecodeError) as exc:
        raise PluginImportError(f"cannot read {location}: {exc}") from None


def import_plugin(source: str) -> Manifest:
    """`source`: URL or path of ai-plugin.json, or a site root (its /.well-known/ai-plugin.json)."""
    if source.startswith(("http://", "https://")) and not source.endswith(".json"):
        source = urljoin(source.rstrip("/") + "/", ".well-known/ai-plugin.json")
    plugin, plugin_url = _load_json(source)
    api = plugin.get("api") or {}
    spec = api.get("url")
    if not spec:
        raise PluginImportError("ai-plugin.json has no api.url")
    if plugin_url:
        spec = urljoin(plugin_url, spec)
    elif not spec.startswith(("http://", "https://")):
        spec = str((Path(source).parent / spec).resolve())
    raw_name = plugin.get("name_for_model") or plugin.get("name_for_human") or "plugin"
    name = re.sub(r"[^a-z0-9_]", "_", raw_name.lower()).strip("_") or "plugin"
    auth = plugin.get("auth") or {}
    env: list[str] = []
    headers: dict[str, str] = {}
    if auth.get("type") not in (None, "none"):
        var = f"{name.upper()}_API_KEY"
        env.append(var)
        headers["Authorization"] = f"Bearer ${{{var}}}"
    manifest = Manifest(
        name=name,
        version=str(plugin.get("schema_version") or "0.1.0"),
        description=plugin.get("description_for_model") or plugin.get("description_for_human") or name,
        binding=OpenAPIBinding(spec=spec, headers=headers),
        auth=Auth(env=env),
    )
    try:
        discovered, _ = openapi_bindings(manifest, None)
    except BindingError as exc:
        raise PluginImportError(str(exc)) from None
    for action in discovered.actions:
        action.operation_id = action.name
    return discovered
