"""Which URLs the browser may load: http(s) to public addresses; private, loopback, link-local and
other special addresses only when the settings allow them (`allow_hosts`, `allow_private`); file://
only when allowed or when the URL came from the user's own local index.

`require` checks a URL before a navigation (for a clear refusal); `connect_address` is what the
session's proxy (proxy.py) asks for every request Chromium makes, redirect hops included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from toolkit.tools.browser.errors import ActionRefused
from toolkit.tools.browser.settings import BrowserSettings

PASS_THROUGH_SCHEMES = {"data", "blob", "about"}  # never leave the browser
RESOLVE_TIMEOUT_S = 10.0
LOCAL_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: translation inside one network
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


def _special(address: str) -> bool:
    """Whether connecting to `address` may reach something that is not the public internet: a
    non-global address, or an IPv6 address that carries a non-global IPv4 one (IPv4-mapped,
    NAT64, 6to4, Teredo, IPv4-compatible), which a gateway or relay on the way would reach."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL_USE:
            return True
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in NAT64_WELL_KNOWN or (ip in IPV4_COMPATIBLE and int(ip) > 1):
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(v4 is not None and _special(str(v4)) for v4 in embedded):
            return True
    return not ip.is_global or ip.is_multicast


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class URLPolicy:
    def __init__(self, settings: BrowserSettings):
        self.allow_private = settings.allow_private
        self.allow_hosts = {h.lower().strip("[]") for h in settings.allow_hosts}
        self.allow_file_urls = settings.allow_file_urls

    def host_allowed(self, host: str) -> bool:
        return self.allow_private or host.lower().strip("[]") in self.allow_hosts

    @staticmethod
    def refusal(host: str) -> str:
        return f"{host} is a private or loopback address; allow it with the browser setting allow_hosts: [{host}] (or allow_private: true)"

    async def connect_address(self, host: str, port: int, url: str = "") -> tuple[str, str | None]:
        """(the address to connect to, None) or (\"\", why not). A name is resolved once, here, and
        refused if any of its addresses is special; the proxy then connects to the address checked
        and never resolves the name itself. A name that can't be resolved is refused (fail closed):
        passing it on would let a second lookup, by whoever connects, answer differently."""
        host = host.strip("[]").lower()
        if not host:
            return "", f"{url or 'the URL'} has no host"
        allowed = self.host_allowed(host)
        if _is_ip(host):
            return ("", self.refusal(host)) if _special(host) and not allowed else (host, None)
        if not allowed and (host == "localhost" or host.endswith(LOCAL_NAME_SUFFIXES)):
            return "", self.refusal(host)
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
            )
        except (OSError, UnicodeError, TimeoutError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else (getattr(exc, "strerror", None) or str(exc))
            return "", f"cannot resolve {host} ({why}); a name the policy cannot check is not loaded"
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            return "", f"cannot resolve {host} (no address); a name the policy cannot check is not loaded"
        if not allowed and any(_special(a) for a in addresses):
            return "", self.refusal(host)
        return addresses[0], None

    async def check(self, url: str, *, trusted_file: bool = False) -> str | None:
        """None if `url` may load, else the reason it may not."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in PASS_THROUGH_SCHEMES:
            return None
        if scheme == "file":
            return (
                None
                if (self.allow_file_urls or trusted_file)
                else "file:// URLs are not allowed (setting allow_file_urls)"
            )
        if scheme not in ("http", "https"):
            return f"only http and https URLs can be opened, not {scheme or 'a URL without a scheme'}"
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            return f"{url!r} has an invalid port"
        _, reason = await self.connect_address(parts.hostname or "", port, url)
        return reason

    async def require(self, url: str, *, trusted_file: bool = False) -> str:
        """`url` normalised (a bare host gets https://), or ActionRefused."""
        url = url.strip()
        if "://" not in url and not url.startswith(("about:", "data:")):
            url = "https://" + url
        reason = await self.check(url, trusted_file=trusted_file)
        if reason is not None:
            raise ActionRefused(reason)
        return url
