"""A DNS rebinding attacker, for tests/security/test_browser_address_policy.py.

Run as a script inside a private mount namespace whose /etc/resolv.conf names the attacker's DNS
server (a real one, on 127.0.0.77:53, below), it opens a URL with the browser tool (real Chromium,
the real policy proxy) and prints, as JSON, what the browser said, what the DNS server was asked
and what the internal service on 127.0.0.3 received. Nothing here changes the host's resolver:
the mount namespace is the script's alone.

Scenarios (how the DNS server answers the A queries for the attacker's name, in order):
- `fail-N`: SERVFAIL to the first N (the policy cannot check the name), then 127.0.0.3;
- `silent-N`: no answer to the first N (time-outs), then 127.0.0.3.
N is how many lookups the attacker expects to fail before the one that connects: a navigation is
checked once before Chromium asks the proxy, which checked once and connected by name (2); a
subresource only goes through the proxy (1). A lookup that times out asks twice (glibc resends the
A query alone), so `silent-4` fails a navigation's two lookups. AAAA queries get an empty answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import struct
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DNS_ADDRESS = "127.0.0.77"
INTERNAL = "127.0.0.3"  # the service the attacker wants to reach
ALLOWED = "127.0.0.2"  # a page the policy allows, which embeds the attacker's name
NAME = "rebind.attacker.test"
RESOLV_CONF = f"nameserver {DNS_ADDRESS}\noptions timeout:1 attempts:1\n"


class DnsServer:
    def __init__(self, scenario: str):
        mode, _, failures = scenario.partition("-")
        self.mode, self.failures = mode, int(failures)
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((DNS_ADDRESS, 53))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            data, peer = self.sock.recvfrom(512)
            reply = self.answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def answer(self, query: bytes) -> bytes | None:
        labels, at = [], 12
        while query[at]:
            labels.append(query[at + 1 : at + 1 + query[at]].decode())
            at += 1 + query[at]
        qtype = struct.unpack("!H", query[at + 1 : at + 3])[0]
        question = query[12 : at + 5]
        name = ".".join(labels).lower()
        kind = {1: "A", 28: "AAAA"}.get(qtype, str(qtype))
        self.queries.append(f"{kind} {name}")
        header = query[:2]
        if name != NAME or kind != "A":
            return header + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0) + question  # no such record
        failing = sum(1 for q in self.queries if q == f"A {NAME}") <= self.failures
        if failing and self.mode == "fail":
            return header + struct.pack("!HHHHH", 0x8182, 1, 0, 0, 0) + question  # SERVFAIL
        if failing and self.mode == "silent":
            return None
        record = struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(INTERNAL)
        return header + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + record


def _internal_service() -> tuple[ThreadingHTTPServer, list[str]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.path)
            body = b"<html><title>internal</title><body>internal secrets</body></html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((INTERNAL, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def _allowed_page(target: str) -> ThreadingHTTPServer:
    folder = Path(tempfile.mkdtemp())
    (folder / "page.html").write_text(
        f"<html><title>allowed</title><body><p>An allowed page.</p><img src='{target}'></body></html>"
    )

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((ALLOWED, 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def _browse(url: str, chromium: str) -> dict:
    from toolkit.tools.browser.errors import ActionRefused, PageLoadError
    from toolkit.tools.browser.session import BrowserSession
    from toolkit.tools.browser.settings import BrowserSettings

    session = BrowserSession(BrowserSettings(chromium_path=chromium, allow_hosts=[ALLOWED], navigation_timeout_s=15))
    try:
        page = await session.open(url)
        await asyncio.sleep(1)  # let the page's subresources go out
        return {"outcome": "loaded", "text": page.get("text", ""), "blocked": session.driver.proxy.blocked}
    except ActionRefused as exc:
        return {"outcome": "refused", "message": str(exc), "blocked": session.driver.proxy.blocked}
    except PageLoadError as exc:
        return {"outcome": "failed", "message": str(exc), "blocked": session.driver.proxy.blocked}
    finally:
        await session.close()


def main() -> None:
    scenario, where, chromium = sys.argv[1:4]
    dns = DnsServer(scenario)
    internal, seen = _internal_service()
    target = f"http://{NAME}:{internal.server_address[1]}/secret"
    if where == "subresource":
        allowed = _allowed_page(target)
        url = f"http://{ALLOWED}:{allowed.server_address[1]}/page.html"
    else:
        url = target
    result = asyncio.run(_browse(url, chromium))
    result.update(internal_requests=seen, dns_queries=dns.queries)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
