"""The browser's policy proxy on its own (no Chromium): HTTPS tunnels (CONNECT) and plain HTTP to
allowed hosts pass, byte for byte; private and loopback hosts that are not allowed get a 403
naming the reason. Real sockets on 127.0.0.1 only."""

from __future__ import annotations

import asyncio

import pytest

from toolkit.tools.browser.proxy import BLOCKED_HEADER, PolicyProxy
from toolkit.tools.browser.settings import BrowserSettings
from toolkit.tools.browser.urls import URLPolicy


async def _echo_server():
    async def echo(reader, writer):
        data = await reader.read(1024)
        if data.startswith(b"GET "):
            body = data.split(b"\r\n")[0]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        else:
            writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(proxy_url: str, request: bytes, then: bytes = b"") -> bytes:
    host, port = proxy_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    if then:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(then)
        await writer.drain()
        reply = head + await reader.read(1024)
    else:
        reply = await reader.read(4096)
    writer.close()
    return reply


@pytest.fixture
def policy():
    return URLPolicy(BrowserSettings(allow_hosts=["127.0.0.1"]))


async def test_tunnel_and_plain_http_to_an_allowed_host(policy):
    server, port = await _echo_server()
    proxy = PolicyProxy(policy)
    url = await proxy.start()
    try:
        reply = await _ask(
            url, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(), then=b"ping"
        )
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"echo:ping")
        reply = await _ask(
            url,
            f"GET http://127.0.0.1:{port}/page?q=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nProxy-Connection: keep-alive\r\n\r\n".encode(),
        )
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"GET /page?q=1 HTTP/1.1")  # origin-form upstream
        assert proxy.blocked == []
    finally:
        await proxy.close()
        server.close()


@pytest.mark.parametrize(
    "request_line",
    [
        "CONNECT localhost:443 HTTP/1.1",
        "CONNECT 10.0.0.1:443 HTTP/1.1",
        "CONNECT [::1]:443 HTTP/1.1",
        "GET http://169.254.169.254/latest/meta-data HTTP/1.1",
        "GET http://192.168.1.1/ HTTP/1.1",
    ],
)
async def test_private_and_loopback_hosts_get_a_403_with_the_reason(policy, request_line):
    proxy = PolicyProxy(policy)
    url = await proxy.start()
    try:
        reply = (await _ask(url, f"{request_line}\r\nHost: x\r\n\r\n".encode())).decode()
        assert reply.startswith("HTTP/1.1 403")
        assert f"{BLOCKED_HEADER}: " in reply and "private or loopback" in reply
        assert len(proxy.blocked) == 1
    finally:
        await proxy.close()


async def test_allow_private_lets_everything_through():
    policy = URLPolicy(BrowserSettings(allow_private=True))
    assert await policy.check("http://10.0.0.1/") is None
    assert await policy.check("http://localhost:8000/") is None
    strict = URLPolicy(BrowserSettings())
    assert "private or loopback" in await strict.check("http://[::ffff:127.0.0.1]/")  # IPv4-mapped IPv6
    assert "file://" in await strict.check("file:///etc/passwd")
    assert await strict.check("file:///tmp/doc.html", trusted_file=True) is None
