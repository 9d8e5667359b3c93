"""Issue #23, class 4: the browser's address policy must have no way around it.

Real Chromium through Playwright and the real policy proxy; real servers on 127.0.0.x: a UDP
listener that stands where a STUN/TURN server or a peer would (any datagram it receives went
around the proxy, which carries TCP only), an "internal service" over HTTP, and, for DNS
rebinding, a real DNS server that the browser's process reaches through a private mount
namespace (tests/security/dns_rebinding.py).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

pytest.importorskip("playwright")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed", allow_module_level=True)

from tests.security.dns_rebinding import RESOLV_CONF  # noqa: E402
from toolkit.tools.browser.errors import ActionRefused, PageLoadError  # noqa: E402
from toolkit.tools.browser.session import BrowserSession  # noqa: E402
from toolkit.tools.browser.settings import BrowserSettings  # noqa: E402

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
PAGE_HOST = "127.0.0.2"


class UdpListener:
    """Counts the datagrams that reach it (STUN binding requests start 0x0001, TURN allocations 0x0003)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self.packets.append(self.sock.recv(4096))
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture()
def udp():
    listener = UdpListener()
    yield listener
    listener.close()


STUN_PAGE = """<html><body><p id=o>start</p><script>
const pc = new RTCPeerConnection({iceServers: [
  {urls: 'stun:127.0.0.1:%(port)d'},
  {urls: 'turn:127.0.0.1:%(port)d?transport=udp', username: 'u', credential: 'p'}]});
pc.createDataChannel('x');
pc.createOffer().then(o => pc.setLocalDescription(o)).then(() => document.getElementById('o').textContent = 'offered');
</script></body></html>"""

# Two peers in one page, then a forged remote candidate at the listener: ICE connectivity checks
# (STUN binding requests) go to any address:port a page names, no server needed.
REMOTE_CANDIDATE_PAGE = """<html><body><p id=o>start</p><script>
(async () => {
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.createDataChannel('x');
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  await a.addIceCandidate({candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 %(port)d typ host', sdpMid: '0'});
  document.getElementById('o').textContent = 'offered';
})().catch(e => document.getElementById('o').textContent = 'failed ' + e);
</script></body></html>"""


async def _open_and_wait(url: str, **settings) -> str:
    session = BrowserSession(BrowserSettings(chromium_path=CHROMIUM, **settings))
    try:
        await session.open(url)
        for _ in range(40):  # the script ran...
            state = await session.driver.page.evaluate("document.getElementById('o').textContent")
            if state != "start":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # ...and ICE had time to send (it retries for seconds)
        return state
    finally:
        await session.close()


def _data_url(html: str) -> str:
    return "data:text/html," + urllib.parse.quote(html)


@pytest.fixture()
def page_server(tmp_path):
    """An allowed site on 127.0.0.2 serving the test's pages."""
    server = ThreadingHTTPServer((PAGE_HOST, 0), functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://{PAGE_HOST}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_webrtc_from_a_data_page_sends_no_udp(udp):
    """The red team's case: STUN (and TURN over UDP) to loopback from a data: page, around the proxy."""
    state = asyncio.run(_open_and_wait(_data_url(STUN_PAGE % {"port": udp.port})))
    assert state == "offered"  # the page's script ran to its end
    assert udp.packets == []


def test_webrtc_from_an_allowed_page_sends_no_udp(udp, page_server):
    """The red team's second case: the same from a page the policy allows."""
    folder, base = page_server
    (folder / "stun.html").write_text(STUN_PAGE % {"port": udp.port})
    state = asyncio.run(_open_and_wait(base + "stun.html", allow_hosts=[PAGE_HOST]))
    assert state == "offered"
    assert udp.packets == []


def test_webrtc_connectivity_checks_to_a_forged_candidate_send_no_udp(udp):
    """A variant: no STUN server at all; ICE checks sent to a remote candidate the page forged."""
    state = asyncio.run(_open_and_wait(_data_url(REMOTE_CANDIDATE_PAGE % {"port": udp.port})))
    assert state == "offered"
    assert udp.packets == []


def _rebinding(scenario: str, where: str, tmp_path: Path) -> dict:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux unshare: a private mount namespace and a DNS server on port 53")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(RESOLV_CONF)
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            str(resolv),
            sys.executable,
            str(REPO / "tests" / "security" / "dns_rebinding.py"),
            scenario,
            where,
            CHROMIUM,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_name_the_policy_cannot_resolve_is_refused_not_resolved_again(tmp_path):
    """The red team's case: the policy's lookup fails (SERVFAIL), the name was passed on, and the
    proxy's own lookup got the internal address."""
    result = _rebinding("fail-2", "page", tmp_path)
    assert result["internal_requests"] == [], result
    assert result["outcome"] == "refused" and "cannot resolve" in result["message"], result


def test_a_resolver_time_out_is_refused_too(tmp_path):
    """A variant: the first lookup gets no answer at all."""
    result = _rebinding("silent-4", "page", tmp_path)
    assert result["internal_requests"] == [], result
    assert result["outcome"] == "refused", result


def test_an_allowed_pages_subresource_with_an_unresolvable_name_is_refused(tmp_path):
    """A variant: the attacker's name in an <img> of a page the policy allows (no navigation check
    before it: only the proxy sees it)."""
    result = _rebinding("fail-1", "subresource", tmp_path)
    assert result["outcome"] == "loaded", result  # the allowed page itself loads
    assert result["internal_requests"] == [], result
    assert any("rebind.attacker.test" in url and "cannot resolve" in why for url, why in result["blocked"]), result


@pytest.mark.parametrize(
    "address",
    [
        "[64:ff9b::7f00:1]",  # NAT64 (RFC 6052) of 127.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254, the cloud metadata service
        "[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
        "[::7f00:1]",  # IPv4-compatible 127.0.0.1
        "[64:ff9b:1::a00:1]",  # local-use NAT64 (RFC 8215) of 10.0.0.1
    ],
)
def test_ipv6_spellings_of_internal_ipv4_addresses_are_refused(address):
    """A variant: IPv6 addresses that carry an internal IPv4 one (which a NAT64 gateway or a 6to4
    relay would reach) counted as global."""

    async def attempt() -> Exception | None:
        session = BrowserSession(BrowserSettings(chromium_path=CHROMIUM, navigation_timeout_s=5))
        try:
            await session.open(f"http://{address}:8080/")
        except (ActionRefused, PageLoadError) as exc:
            return exc
        finally:
            await session.close()
        return None

    refused = asyncio.run(attempt())
    assert isinstance(refused, ActionRefused) and "private or loopback" in str(refused), refused


def _chromium_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.exe().endswith("/chromium"):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_chromium_runs_inside_its_own_sandbox(page_server):
    """The red team's case: Chromium always ran with --no-sandbox (as root, even). Its renderers,
    which run the pages' code, must be under its seccomp-bpf sandbox and not root; nor may the
    browser process be root."""
    if os.uname().sysname != "Linux":
        pytest.skip("reads /proc")
    folder, base = page_server
    (folder / "p.html").write_text("<html><body><p>a page</p></body></html>")

    async def inspect() -> list[dict]:
        session = BrowserSession(BrowserSettings(chromium_path=CHROMIUM, allow_hosts=[PAGE_HOST]))
        try:
            await session.open(base + "p.html")
            time.sleep(0.2)
            seen = []
            for proc in _chromium_processes():
                status = Path(f"/proc/{proc.pid}/status").read_text()
                fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
                kind = next((a.split("=", 1)[1] for a in proc.cmdline() if a.startswith("--type=")), "browser")
                seen.append({"type": kind, "uid": proc.uids().real, "seccomp": fields["Seccomp"].strip()})
            return seen
        finally:
            await session.close()

    processes = asyncio.run(inspect())
    renderers = [p for p in processes if p["type"] == "renderer"]
    assert renderers, processes
    assert all(p["seccomp"] == "2" and p["uid"] != 0 for p in renderers), processes
    assert [p["uid"] for p in processes if p["type"] == "browser"] != [0], processes
