"""The `openapi` binding: an OpenAPI 3 spec's operations become actions.

Each operation's `operationId` is the action name; path, query and JSON-body parameters are merged
into one arguments object. Actions listed in the manifest restrict and override what is found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import yaml

from toolkit import safe_yaml
from toolkit.bindings import ActionBinding, BindingError
from toolkit.bindings.http import RequestBinding
from toolkit.manifest import Action, Annotations, Manifest

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def read_spec(location: str, base_dir: Path | None) -> tuple[dict[str, Any], str | None]:
    """Load a spec from a URL or a file; return it and the URL it came from (for relative servers)."""
    if location.startswith(("http://", "https://")):
        try:
            response = httpx.get(location, timeout=30, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise BindingError(f"cannot fetch OpenAPI spec {location}: {exc}") from None
        text, url = response.text, location
    else:
        path = Path(location)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            text, url = path.read_text(encoding="utf-8"), None
        except OSError as exc:
            raise BindingError(f"cannot read OpenAPI spec {path}: {exc}") from None
    try:
        spec = json.loads(text) if text.lstrip().startswith("{") else safe_yaml.load(text)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise BindingError(f"OpenAPI spec {location} is not usable JSON or YAML: {exc}") from None
    if not isinstance(spec, dict) or "paths" not in spec:
        raise BindingError(f"OpenAPI spec {location} has no `paths`")
    return spec, url


def _resolve_refs(node: Any, spec: dict[str, Any], depth: int = 0) -> Any:
    if depth > 20:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return _resolve_refs(target, spec, depth + 1)
        return {k: _resolve_refs(v, spec, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, spec, depth + 1) for v in node]
    return node


def _action_name(operation: dict[str, Any], method: str, path: str) -> str:
    name = operation.get("operationId") or f"{method}_{path}"
    return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or method


def _input_schema(operation: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in operation.get("parameters", []):
        if param.get("in") not in ("path", "query"):
            continue
        schema = dict(param.get("schema") or {"type": "string"})
        if param.get("description"):
            schema.setdefault("description", param["description"])
        properties[param["name"]] = schema
        if param.get("required") or param.get("in") == "path":
            required.append(param["name"])
    body = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
    if isinstance(body, dict) and body.get("type", "object") == "object":
        properties.update(body.get("properties", {}))
        required.extend(body.get("required", []))
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = sorted(set(required))
    return schema


def openapi_bindings(manifest: Manifest, base_dir: Path | None) -> tuple[Manifest, dict[str, ActionBinding]]:
    binding = manifest.binding
    spec, spec_url = read_spec(binding.spec, base_dir)  # type: ignore[union-attr]
    spec = _resolve_refs(spec, spec)
    base_url = binding.base_url or ((spec.get("servers") or [{}])[0].get("url") or "")  # type: ignore[union-attr]
    if spec_url:
        base_url = urljoin(spec_url, base_url or "/")
    if not base_url:
        raise BindingError("OpenAPI spec names no server; set `binding.base_url`")
    declared = {a.operation_id or a.name: a for a in manifest.actions}
    actions: list[Action] = []
    bindings: dict[str, ActionBinding] = {}
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            operation = (item or {}).get(method)
            if not isinstance(operation, dict):
                continue
            op_name = _action_name(operation, method, path)
            if declared and op_name not in declared:
                continue
            action = declared.get(op_name) or Action(
                name=op_name,
                description=(operation.get("summary") or operation.get("description") or f"{method.upper()} {path}")[
                    :1000
                ],
                input_schema=_input_schema(operation),
                annotations=Annotations(
                    read_only=method == "get", idempotent=method in ("get", "put", "delete"), open_world=True
                ),
            )
            actions.append(action)
            bindings[action.name] = RequestBinding(base_url, method, path, binding.headers)  # type: ignore[union-attr]
    missing = set(declared) - {a.operation_id or a.name for a in actions}
    if missing:
        raise BindingError(f"OpenAPI spec has no operation(s) {sorted(missing)}")
    if not actions:
        raise BindingError("OpenAPI spec has no operations")
    return manifest.model_copy(update={"actions": actions}), bindings
