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
LOCAL_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


def _special(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
        refused if any of its addresses is special; the proxy then connects to the address checked.
        An unresolvable name is passed on as it is (the connection fails, which is no policy matter)."""
        host = host.strip("[]").lower()
        if not host:
            return "", f"{url or 'the URL'} has no host"
        allowed = self.host_allowed(host)
        if _is_ip(host):
            return ("", self.refusal(host)) if _special(host) and not allowed else (host, None)
        if not allowed and (host == "localhost" or host.endswith(LOCAL_NAME_SUFFIXES)):
            return "", self.refusal(host)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return host, None
        addresses = [str(info[4][0]) for info in infos]  # an IPv4 or IPv6 address: a str
        if not allowed and any(_special(a) for a in addresses):
            return "", self.refusal(host)
        return (addresses[0] if addresses else host), None

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
