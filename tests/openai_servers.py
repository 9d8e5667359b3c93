"""Servers for the OpenAI backend's tests, all on 127.0.0.1:

- `LlamaServer`: llama-cpp-python's real OpenAI-compatible server (`python -m llama_cpp.server`)
  on the embedded GGUF, started as a subprocess;
- `FaultProxy`: a tiny HTTP proxy in front of it that can fail the next requests with OpenAI's
  500 body, delay them (to trip client timeouts), or check an API key and answer 401 with
  OpenAI's error body, and records every request it saw.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

OPENAI_500 = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


def openai_401(key: str) -> dict[str, Any]:
    shown = (key[:3] + "*" * 4 + key[-2:]) if len(key) > 5 else key
    return {
        "error": {
            "message": f"Incorrect API key provided: {shown}. You can find your API key in your account settings.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` with chatml-function-calling (tool calls parsed server-side)."""

    API_KEY = "test-server-key"
    MODEL = "smollm2"

    def __init__(self, model_path: Path, log_path: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        # one thread: on a loaded 2-core machine two spinning llama.cpp threads run ~20x slower
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chat_format",
            "chatml-function-calling",
            "--model_alias",
            self.MODEL,
            "--n_ctx",
            "2048",
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--api_key",
            self.API_KEY,
        ]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited ({self.process.returncode}):\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                r = httpx.get(f"{self.base_url}/models", headers={"Authorization": f"Bearer {self.API_KEY}"}, timeout=2)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"llama_cpp.server not ready after {timeout_s}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@dataclass
class Seen:
    method: str
    path: str
    status: int
    body: Any = None


@dataclass
class FaultProxy:
    """Forwards /v1/... to `upstream` (adding the upstream's key), unless told to misbehave."""

    upstream: str  # e.g. http://127.0.0.1:PORT/v1
    upstream_key: str
    fail_next: int = 0  # answer this many POSTs with OpenAI's 500
    delay_next: int = 0  # hang `delay_s` on this many POSTs (then 504, to a client long gone)
    delay_s: float = 0.0
    require_key: str | None = None  # answer 401 like OpenAI unless this bearer key is sent
    owned_by: str | None = None  # rewrite GET /models' owned_by (vLLM says "vllm")
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> str:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: what the delay mode is for

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                seen = Seen(self.command, self.path, 0, body)  # recorded on arrival; status once answered
                proxy.seen.append(seen)
                seen.status, payload, ctype = proxy._answer(
                    self.command, self.path, self.headers.get("Authorization", ""), raw
                )
                self._reply(seen.status, payload, ctype)

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _answer(self, method: str, path: str, auth: str, raw: bytes) -> tuple[int, bytes, str]:
        if self.require_key is not None and auth != f"Bearer {self.require_key}":
            return 401, json.dumps(openai_401(auth.removeprefix("Bearer "))).encode(), "application/json"
        if method == "POST" and self.fail_next > 0:
            self.fail_next -= 1
            return 500, json.dumps(OPENAI_500).encode(), "application/json"
        if method == "POST" and self.delay_next > 0:
            # a hung upstream: the client times out and retries; not forwarded, so the one-request-
            # at-a-time llama server doesn't spend time on an answer nobody reads
            self.delay_next -= 1
            time.sleep(self.delay_s)
            return 504, b'{"error": {"message": "timed out"}}', "application/json"
        url = self.upstream.rsplit("/v1", 1)[0] + path
        headers = {"Authorization": f"Bearer {self.upstream_key}", "Content-Type": "application/json"}
        r = httpx.request(method, url, content=raw or None, headers=headers, timeout=300)
        if self.owned_by and method == "GET" and path.endswith("/models") and r.status_code == 200:
            data = r.json()
            for model in data.get("data", []):
                model["owned_by"] = self.owned_by
            return 200, json.dumps(data).encode(), "application/json"
        return r.status_code, r.content, r.headers.get("content-type", "application/json")

    @property
    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
