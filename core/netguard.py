"""SSRF-safe outbound HTTP for URLs that clients give us (webhook URLs, input image URLs).

Two layers:

* ``check_url`` – a cheap early check when the URL is received (scheme http/https, a host,
  literal IP addresses and ``localhost`` names must be public). It cannot see what a host name
  will resolve to, so it is not the defence; it only turns obvious mistakes into a 422.
* ``guarded_client`` / ``guarded_async_client`` – httpx clients whose transport resolves the host
  **at connect time**, refuses every non-public address (loopback, private, link-local including
  the cloud metadata address 169.254.169.254, CGNAT, multicast, unspecified, reserved, and the
  IPv6 equivalents including IPv4-mapped/6to4/NAT64 forms of those), and then connects to the
  very address it checked. There is no second lookup, so a DNS answer that changes between the
  check and the connect (DNS rebinding) cannot slip through. The URL's host name is still what
  goes into the ``Host`` header and TLS SNI/certificate check, so HTTPS works unchanged.
  Redirects are not followed and environment proxies are ignored (a proxy would resolve the host
  itself, out of our sight).

``allow_hosts`` (the ``VISIONGATE_OUTBOUND_ALLOW_HOSTS`` setting) lists host names, IP addresses
or CIDR networks that may be reached even though they are not public, for local development and
tests. A host name in the list allows whatever it resolves to; an IP or network allows those
addresses under any name.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any, Collection, Iterable

import anyio
import httpcore
import httpx

__all__ = ["Blocked", "FetchError", "check_url", "guarded_client", "guarded_async_client", "fetch"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges Python's ``is_global`` does not already exclude, or that we want named explicitly.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class Blocked(Exception):
    """The URL or the address it leads to may not be contacted. ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FetchError(Exception):
    """``fetch`` could not get the resource: HTTP error status, redirect, too large, timeout,
    connection failure. ``status_code`` is set when the server answered."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


# --------------------------------------------------------------------------- address rules
def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (ip.sixtofour if ip.sixtofour else None)
        if embedded is None and ip.teredo:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            return f"{inner} (embedded in {ip})" if inner else None
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        if str(ip) == "169.254.169.254":
            return "the cloud metadata address"
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


class _AllowList:
    def __init__(self, entries: Iterable[str]):
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = entry.strip().lower().strip("[]")
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.add(entry.rstrip("."))

    def name(self, host: str) -> bool:
        return host.lower().rstrip(".").strip("[]") in self.names

    def address(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)


def _literal_ip(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal, including the numeric forms the C resolver
    accepts (``2130706433``, ``0x7f.1``, ``017700000001``)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host.lower()) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_localhost_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def check_url(url: str, allow_hosts: Collection[str] = ()) -> None:
    """Raise ``Blocked`` unless ``url`` is an http(s) URL with a host that is not an obviously
    local address. Host names are not resolved here (see the module docstring)."""
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # httpx.InvalidURL and friends
        raise Blocked(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise Blocked("only http and https URLs are allowed")
    host = parsed.host
    if not host:
        raise Blocked("the URL has no host")
    allow = _AllowList(allow_hosts)
    if allow.name(host):
        return
    ip = _literal_ip(host)
    if ip is not None:
        reason = refusal(ip)
        if reason and not allow.address(ip):
            raise Blocked(f"{host} is {reason}")
    elif _is_localhost_name(host):
        raise Blocked(f"{host} is a loopback name")


# --------------------------------------------------------------------------- resolution
def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver). Tests replace this."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


def _vetted(host: str, port: int, addresses: list[str], allow: _AllowList) -> list[str]:
    """The resolved addresses we may connect to; Blocked if there are none."""
    if not addresses:
        raise Blocked(f"{host} did not resolve to any address")
    if allow.name(host):
        return addresses
    usable, reasons = [], []
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        reason = refusal(ip)
        if reason is None or allow.address(ip):
            usable.append(address)
        else:
            reasons.append(f"{address} is {reason}")
    if not usable:
        raise Blocked(f"{host} resolves to a non-public address ({'; '.join(reasons)})")
    return usable


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, vets and connects to the vetted address (sync)."""

    def __init__(self, allow: _AllowList):
        self.allow = allow
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in _vetted(host, port, addresses, self.allow):
            try:
                return self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                              socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise Blocked("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets and connects to the vetted address (async)."""

    def __init__(self, allow: _AllowList):
        self.allow = allow
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await anyio.to_thread.run_sync(resolve, host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in _vetted(host, port, addresses, self.allow):
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout,
                                                    local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise Blocked("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


# --------------------------------------------------------------------------- transports/clients
_POOL_ARGS = dict(max_connections=20, max_keepalive_connections=10, keepalive_expiry=5.0)


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, allow_hosts: Collection[str] = (), verify: Any = True):
        super().__init__(verify=verify, trust_env=False)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        # Same pool httpx builds, with our network backend (httpx has no public knob for it).
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context,
                                             network_backend=_GuardedBackend(_AllowList(allow_hosts)),
                                             **_POOL_ARGS)


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow_hosts: Collection[str] = (), verify: Any = True):
        super().__init__(verify=verify, trust_env=False)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context,
                                                  network_backend=_AsyncGuardedBackend(_AllowList(allow_hosts)),
                                                  **_POOL_ARGS)


def _timeout(timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=min(5.0, timeout))


def guarded_client(allow_hosts: Collection[str] = (), timeout: float = 10.0, **kw: Any) -> httpx.Client:
    """An ``httpx.Client`` that only reaches public addresses (plus ``allow_hosts``)."""
    kw.setdefault("timeout", _timeout(timeout))
    return httpx.Client(transport=GuardedTransport(tuple(allow_hosts), verify=kw.pop("verify", True)),
                        follow_redirects=False, trust_env=False, **kw)


def guarded_async_client(allow_hosts: Collection[str] = (), timeout: float = 10.0,
                         **kw: Any) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` counterpart of ``guarded_client``."""
    kw.setdefault("timeout", _timeout(timeout))
    return httpx.AsyncClient(transport=AsyncGuardedTransport(tuple(allow_hosts), verify=kw.pop("verify", True)),
                             follow_redirects=False, trust_env=False, **kw)


def fetch(url: str, *, allow_hosts: Collection[str] = (), max_bytes: int,
          timeout: float = 10.0) -> tuple[bytes, str | None]:
    """GET ``url`` (no redirects) and return (body, content type). At most ``max_bytes`` are
    read and the whole exchange must finish within ``timeout`` seconds. Raises ``Blocked`` for
    a forbidden destination and ``FetchError`` for everything else that goes wrong."""
    check_url(url, allow_hosts)
    deadline = time.monotonic() + timeout
    with guarded_client(allow_hosts, timeout=timeout) as client:
        try:
            with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as resp:
                if resp.is_redirect:
                    raise FetchError(f"{url} answered {resp.status_code} (redirects are not followed)",
                                     resp.status_code)
                if not resp.is_success:
                    raise FetchError(f"{url} answered {resp.status_code}", resp.status_code)
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"{url} is {declared} bytes; the limit is {max_bytes}", resp.status_code)
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"{url} is larger than the limit of {max_bytes} bytes",
                                         resp.status_code)
                    if time.monotonic() > deadline:  # a slow drip: a timeout like the others
                        raise FetchError(f"{url} took longer than {timeout:g} s") from httpx.ReadTimeout(
                            "total time exceeded")
                    chunks.append(chunk)
                return b"".join(chunks), resp.headers.get("content-type")
        except httpx.TimeoutException as exc:
            raise FetchError(f"{url} timed out: {exc.__class__.__name__}") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"{url} could not be fetched: {exc}") from exc
