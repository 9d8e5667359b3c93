"""Any OpenAI-compatible chat-completions server over httpx: `vllm serve`, llama.cpp's servers,
OpenAI itself and the many others that speak the same API.

    openai:MODEL@http://127.0.0.1:8000/v1      model string (the factory calls `from_target`)
    OpenAIBackend("gpt-4o-mini", "https://.../v1", api_key=..., server="openai", stream=True)

`server` picks how constraints are sent (see openai_payload.py): "openai", "vllm" (the
`structured_outputs` body field), "llamacpp", or "auto" (the default): asked once from GET /models,
where vLLM lists its models as `owned_by: vllm`.

Retries: 429, 5xx and connection errors/timeouts are retried with exponential backoff (doubling
from `backoff_s`, capped at `max_backoff_s`, honouring Retry-After), `max_retries` times; then a
BackendError. A rejected key (401/403) fails at once with the URL and the variable to set.
Streaming (`stream=True`) measures time to first token; tool-call deltas are assembled by index.
The wire format (request bodies, constraints per server dialect, parsing replies) is in
`openai_payload.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any, Literal

import httpx

from toolkit.models.base import BackendError, Capabilities
from toolkit.models.openai_payload import SERVERS, Server, StreamAssembler, build_body, response_from_body
from toolkit.types import LLMRequest, LLMResponse, Timings

DEFAULT_BASE_URL_ENV = "OPENAI_BASE_URL"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class AuthenticationError(BackendError):
    """The server refused the API key (HTTP 401/403)."""


class ServerUnavailableError(BackendError):
    """The server kept failing (5xx, 429 or no connection) after every retry."""


class _ConstraintRejected(Exception):
    """The server refused `response_format: json_schema` (llama-cpp-python's server answers 500)."""


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        api_key_env: str = DEFAULT_KEY_ENV,
        server: Server | Literal["auto"] = "auto",
        stream: bool = False,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_connections: int = 64,
        headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ):
        if server not in (*SERVERS, "auto"):
            raise BackendError(f"openai backend: server must be one of auto, {', '.join(SERVERS)}, not {server!r}")
        if not base_url.startswith(("http://", "https://")):
            raise BackendError(f"openai backend: base URL must start with http:// or https://, got {base_url!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.server = server  # "auto" is settled by the first request (see _discover)
        # how constraints are sent; "openai" falls back to "llamacpp" once if the server refuses
        self.constraint_dialect: Server = "openai" if server == "auto" else server
        self.stream = stream
        self.timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.headers = dict(headers or {})
        self.extra_body = dict(extra_body or {})
        # every server here enforces JSON schemas and returns tool calls itself (or in content,
        # which parsing.py handles); grammars only on vllm and llama.cpp
        self.capabilities = Capabilities(constrained=True, native_tools=True, batching=server == "vllm")
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._model_lock: asyncio.Lock | None = None

    @classmethod
    def from_target(cls, target: str, **options: Any) -> OpenAIBackend:
        """`MODEL@BASE_URL`; without `@URL` the base URL comes from OPENAI_BASE_URL. An empty MODEL
        (`@http://...`) asks the server's /models for its first model."""
        model, sep, url = target.partition("@")
        for scheme in ("@http://", "@https://"):  # a model name may itself hold an '@'
            if scheme in target:
                cut = target.rindex(scheme)
                model, url = target[:cut], target[cut + 1 :]
                break
        else:
            if sep:
                raise BackendError(f"openai model string must be openai:MODEL@http(s)://HOST/v1, got openai:{target}")
            url = os.environ.get(DEFAULT_BASE_URL_ENV, "")
            if not url:
                raise BackendError(
                    f"openai:{target} names no server; use openai:{target}@http://HOST:PORT/v1 or set {DEFAULT_BASE_URL_ENV}"
                )
        return cls(model.strip(), url.strip(), **options)

    # --- HTTP ---------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        """One client per event loop: pooled connections can't outlive the loop that opened them
        (the sync `Agent.run` starts a fresh loop per call)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            headers = {"Content-Type": "application/json", **self.headers}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=self.limits, headers=headers)
            self._client_loop = loop
            self._model_lock = asyncio.Lock()
        return self._client

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        if response is not None:
            try:  # a server that says when to come back knows best, within our cap
                delay = min(self.max_backoff_s, max(delay, float(response.headers.get("retry-after", ""))))
            except ValueError:
                pass
        return delay * (0.75 + random.random() / 2)  # jitter: concurrent agents don't retry in step

    def _fail(self, response: httpx.Response, url: str) -> BackendError:
        detail = _error_detail(response)
        if response.status_code in (401, 403):
            sent = (
                f"the key from {self.api_key_env}"
                if self.api_key and self.api_key == os.environ.get(self.api_key_env)
                else ("the api_key option" if self.api_key else f"no key ({self.api_key_env} is not set)")
            )
            return AuthenticationError(
                f"{url} refused the API key (HTTP {response.status_code}: {detail}); sent {sent}. "
                f"Set {self.api_key_env} to a valid key for this server (or pass api_key=...)."
            )
        if response.status_code == 404:
            return BackendError(
                f"{url} returned 404 ({detail}); check the base URL (it usually ends in /v1) and the model name {self.model!r}"
            )
        return BackendError(f"{url} rejected the request (HTTP {response.status_code}: {detail})")

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, stream: bool = False
    ) -> tuple[httpx.Response, float]:
        """A request with retries; returns the open response (the caller reads and closes it) and
        the time the successful attempt started."""
        url = f"{self.base_url}{path}"
        client = self._http()
        last = ""
        for attempt in range(self.max_retries + 1):
            started = time.perf_counter()
            response: httpx.Response | None = None
            try:
                response = await client.send(client.build_request(method, url, json=body), stream=stream)
            except httpx.TransportError as exc:  # refused, reset, timed out
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code < 400:
                    return response, started
                await response.aread()
                await response.aclose()
                if body is not None and self._refused_response_format(response, body):
                    raise _ConstraintRejected(_error_detail(response))
                if response.status_code not in RETRY_STATUS or _is_request_error(response):
                    raise self._fail(response, url)
                last = f"HTTP {response.status_code}: {_error_detail(response)}"
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, response))
        raise ServerUnavailableError(f"{url} failed {self.max_retries + 1} times; last: {last}")

    def _refused_response_format(self, response: httpx.Response, body: dict[str, Any]) -> bool:
        fmt = body.get("response_format")
        if self.constraint_dialect != "openai" or not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            return False
        detail = _error_detail(response)
        return response.status_code in (400, 422, 500) and "response_format" in detail

    async def _discover(self) -> None:
        """Once, if needed: the model (when none was named) and the server kind (server="auto")
        from GET /models. vLLM marks its models `owned_by: vllm`, llama.cpp's server `llamacpp`."""
        if self.model and self.server != "auto":
            return
        self._http()
        assert self._model_lock is not None
        async with self._model_lock:
            if self.model and self.server != "auto":
                return
            try:
                response, _ = await self._request("GET", "/models")
                data = response.json().get("data") or []
            except (AuthenticationError, ServerUnavailableError):
                raise
            except (BackendError, ValueError, AttributeError):  # no /models here: guess nothing
                data = []
            if self.server == "auto":
                owners = {str(m.get("owned_by", "")).lower() for m in data if isinstance(m, dict)}
                self.server = "vllm" if "vllm" in owners else "llamacpp" if "llamacpp" in owners else "openai"
                self.constraint_dialect = self.server
                self.capabilities.batching = self.server == "vllm"
            if not self.model:
                if not data:
                    raise BackendError(
                        f"{self.base_url}/models lists no models; name one: openai:MODEL@{self.base_url}"
                    )
                self.model = data[0]["id"]

    # --- the protocol -------------------------------------------------------------------------

    async def generate(self, request: LLMRequest) -> LLMResponse:
        await self._discover()
        try:
            return await self._generate(request)
        except _ConstraintRejected:
            # a server without json_schema response formats (llama-cpp-python's): send the
            # schema its way from now on
            self.constraint_dialect = "llamacpp"
            return await self._generate(request)

    async def _generate(self, request: LLMRequest) -> LLMResponse:
        body = build_body(request, self.model, self.constraint_dialect, stream=self.stream, extra=self.extra_body)
        if not self.stream:
            response, started = await self._request("POST", "/chat/completions", body)
            try:
                data = response.json()
            except ValueError:
                raise BackendError(f"{self.base_url} sent a reply that is not JSON: {response.text[:200]!r}") from None
            return response_from_body(
                request, self.constraint_dialect, data, Timings(total_s=time.perf_counter() - started)
            )
        return await self._generate_stream(request, body)

    async def _generate_stream(self, request: LLMRequest, body: dict[str, Any]) -> LLMResponse:
        response, started = await self._request("POST", "/chat/completions", body, stream=True)
        assembler = StreamAssembler()
        ttft: float | None = None
        done = False
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, keep-alives
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
                    raise BackendError(f"{self.base_url} reported an error mid-stream: {str(chunk['error'])[:300]}")
                if isinstance(chunk, dict) and assembler.add(chunk) and ttft is None:
                    ttft = time.perf_counter() - started
        except httpx.TransportError as exc:  # the tokens so far are useless without the end
            raise ServerUnavailableError(f"{self.base_url}: the stream broke ({type(exc).__name__}: {exc})") from None
        finally:
            await response.aclose()
        if not done and assembler.finish_reason is None:
            # the connection closed cleanly but mid-answer: a cut reply is not an answer
            raise ServerUnavailableError(f"{self.base_url}: the stream ended before the reply was finished")
        timings = Timings(total_s=time.perf_counter() - started, ttft_s=ttft)
        return assembler.response(request, self.constraint_dialect, timings)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()


def _is_request_error(response: httpx.Response) -> bool:
    """A 5xx that is really the request's fault (llama-cpp-python's server answers 500 to a body
    that fails its validation): retrying the same body can't help."""
    return response.status_code == 500 and "validation error" in _error_detail(response).lower()


def _error_detail(response: httpx.Response) -> str:
    """The server's error message (OpenAI: {"error": {"message": ...}}), short."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict):
            err = err.get("message") or err
        return str(err)[:300]
    return str(data)[:300]
