"""The `http` binding: each action is a request to `base_url + route.path`.

Path placeholders (`{id}`) are filled from the arguments; the rest go in the query string (GET,
DELETE) or a JSON body (POST, PUT, PATCH). Header values expand `${VAR}` from the environment.
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Any
from urllib.parse import quote, unquote

import httpx

from toolkit.bindings import ActionBinding, BindingError, ToolContext, ToolInputError
from toolkit.manifest import HttpBinding, Manifest, env_references, expand_env

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class HttpError(Exception):
    """The service answered with an error status; the message carries status and body start."""


class RequestBinding:
    def __init__(self, base_url: str, method: str, path: str, headers: dict[str, str]):
        self.base_url = base_url.rstrip("/")
        self.method = method.upper()
        self.path = path if path.startswith("/") else "/" + path
        self.headers = headers

    def destination(self) -> dict[str, Any]:
        return {
            "type": "http",
            "method": self.method,
            "url": self.base_url + self.path,
            "headers": dict(sorted(self.headers.items())),  # templates: `${VAR}`, never a value
            "sends_env": sorted({name for v in self.headers.values() for name in env_references(v)}),
        }

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        args = dict(arguments)
        path = self.path
        for name in _PLACEHOLDER.findall(self.path):
            if name not in args:
                raise ToolInputError(f"missing path parameter {name!r}")
            path = path.replace("{" + name + "}", path_segment(name, args.pop(name)))
        environ = {**os.environ, **ctx.env}
        headers = {k: expand_env(v, environ) for k, v in self.headers.items()}
        send_body = self.method in ("POST", "PUT", "PATCH")
        async with httpx.AsyncClient(timeout=None) as client:
            response = await client.request(
                self.method,
                self.base_url + path,
                params=None if send_body else {k: _query_value(v) for k, v in args.items()},
                json=args if send_body else None,
                headers=headers,
            )
        if response.status_code >= 400:
            raise HttpError(f"HTTP {response.status_code} from {self.method} {path}: {response.text[:300]}")
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text


def path_segment(name: str, value: Any) -> str:
    """A path parameter as exactly one segment of the route's path. Percent-encoding keeps `/`
    and `?` inside it, but a server (or a proxy before it) normalises `.` and `..` segments, after
    decoding them (`%2e%2e`), sometimes twice, and some treat `\\` as `/`: a value that decodes to
    such a segment, or to nothing, would reach another path, so it is refused."""
    text = str(value)
    decoded = text
    for _ in range(4):  # %252e%252e -> %2e%2e -> ..
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
    decoded = unicodedata.normalize("NFKC", decoded)  # fullwidth dots (U+FF0E) normalise to `.`
    if not decoded.strip() or any(part.strip() in (".", "..") for part in re.split(r"[/\\]", decoded)):
        raise ToolInputError(f"path parameter {name!r} may not be {text[:80]!r}: it would leave the route's path")
    return quote(text, safe="")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def http_bindings(manifest: Manifest) -> dict[str, ActionBinding]:
    binding = manifest.binding
    assert isinstance(binding, HttpBinding)  # toolkit.bindings sends only http manifests here
    bindings: dict[str, ActionBinding] = {}
    for action in manifest.actions:
        if action.route is None:
            raise BindingError(f"action {action.name!r} of an http binding needs a `route`")
        bindings[action.name] = RequestBinding(
            binding.base_url, action.route.method, action.route.path, binding.headers
        )
    return bindings
