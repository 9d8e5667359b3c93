"""A forward HTTP(S) proxy on 127.0.0.1 through which a session's Chromium sends every request,
so that the URL policy holds for each one: the first navigation, redirect hops (which Playwright's
request routing never sees), subresources, fetches and websockets alike.

The proxy resolves a host itself (through the policy), refuses it when an address is special
(private, loopback...) and not allowed, or when it can't be resolved, and connects to the very
address it checked, never to a name (so a DNS answer that changes between check and connect can't
slip through). Plain-HTTP requests are forwarded one per connection
(`Connection: close`), which keeps the proxy free of HTTP message framing; HTTPS is tunnelled
(CONNECT). A refusal is a 403 whose `X-Toolkit-Blocked` header holds the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from toolkit.tools.browser.urls import URLPolicy

BLOCKED_HEADER = "X-Toolkit-Blocked"
HEADER_LIMIT = 64 * 1024
HOP_BY_HOP = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}


class PolicyProxy:
    def __init__(self, policy: URLPolicy, connect_timeout_s: float = 15.0):
        self.policy = policy
        self.connect_timeout_s = connect_timeout_s
        self.blocked: list[tuple[str, str]] = []  # (url, reason), newest last
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=HEADER_LIMIT)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        if method.upper() == "CONNECT":
            host, _, port = target.rpartition(":")
            url, port_number = f"https://{host.strip('[]')}/", int(port or 443)
        else:
            parts = urlsplit(target)
            if parts.scheme not in ("http", "ws"):
                await _reply(writer, 400, "only absolute http URLs are proxied")
                return
            host, port_number, url = parts.hostname or "", parts.port or 80, target
        address, reason = await self.policy.connect_address(host, port_number, url)
        if reason is not None:
            self.blocked.append((url, reason))
            await _reply(writer, 403, reason)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(address, port_number), self.connect_timeout_s
            )
        except (TimeoutError, OSError) as exc:
            await _reply(writer, 502, f"cannot connect to {host}:{port_number}: {exc}", blocked=False)
            return
        try:
            if method.upper() == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                parts = urlsplit(target)
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in HOP_BY_HOP]
                upgrade = any(h.lower().startswith("upgrade:") for h in headers)
                connection = ["Connection: Upgrade"] if upgrade else ["Connection: close"]
                up_writer.write(
                    "\r\n".join([f"{method} {path} {version}", *kept, *connection, "", ""]).encode("latin-1")
                )
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            with contextlib.suppress(Exception):
                up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str, blocked: bool = True) -> None:
    body = reason.encode("utf-8", "replace")
    phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    extra = f"{BLOCKED_HEADER}: {reason.encode('ascii', 'replace').decode()}\r\n" if blocked else ""
    writer.write(
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n".encode("latin-1")
        + body
    )
    await writer.drain()
