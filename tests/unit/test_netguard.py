"""core/netguard.py: URL checks and the connect-time guard of the outbound clients.

A real HTTP server on 127.0.0.1 stands in for an internal service: the guarded clients must not
reach it unless the allow-list says so. Host names are mapped with a patched resolver (the
module's ``resolve``), which is exactly what the transport calls at connect time."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import netguard
from core.netguard import Blocked, FetchError, check_url, fetch, guarded_async_client, guarded_client


@pytest.fixture(scope="module")
def server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"x" * 5000 if self.path == "/big" else f"host={self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def names(monkeypatch):
    """A resolver with extra names: evil.example → 10.0.0.5, meta.example → 169.254.169.254,
    inside.example → 127.0.0.1, v6.example → ::1, ula.example → fd00::1; the rest as usual."""
    table = {"evil.example": ["10.0.0.5"], "meta.example": ["169.254.169.254"],
             "inside.example": ["127.0.0.1"], "v6.example": ["::1"], "ula.example": ["fd00::1"]}
    real = netguard.resolve
    calls: list[str] = []

    def fake(host: str, port: int) -> list[str]:
        calls.append(host)
        return table[host] if host in table else real(host, port)

    monkeypatch.setattr(netguard, "resolve", fake)
    return calls


# --------------------------------------------------------------------------- address rules
@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "169.254.1.1", "100.64.0.1", "224.0.0.1", "0.0.0.0", "255.255.255.255",
    "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::", "64:ff9b::a00:1"])
def test_non_public_addresses_are_refused(address):
    assert netguard.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert netguard.refusal(ipaddress.ip_address(address)) is None


def test_metadata_address_is_named():
    assert "metadata" in netguard.refusal(ipaddress.ip_address("169.254.169.254"))


# --------------------------------------------------------------------------- check_url
@pytest.mark.parametrize("url", [
    "ftp://example.com/x", "file:///etc/passwd", "gopher://example.com", "http:///nohost", "not a url",
    "http://127.0.0.1/", "http://10.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "http://localhost/",
    "http://api.localhost/", "http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/"])
def test_check_url_refuses(url):
    with pytest.raises(Blocked) as err:
        check_url(url)
    assert err.value.reason


def test_check_url_accepts_public_and_allowed():
    check_url("https://hooks.example.com/a?b=c")
    check_url("http://8.8.8.8/")
    check_url("http://127.0.0.1:9000/", allow_hosts=["127.0.0.1"])
    check_url("http://10.1.2.3/", allow_hosts=["10.0.0.0/8"])
    check_url("http://localhost:1/", allow_hosts=["localhost"])


# --------------------------------------------------------------------------- connect-time guard
def test_client_refuses_loopback_literal(server):
    with guarded_client() as client, pytest.raises(Blocked, match="loopback"):
        client.get(f"http://127.0.0.1:{server}/")


def test_client_refuses_a_name_that_resolves_to_loopback(server):
    with guarded_client() as client, pytest.raises(Blocked, match="localhost resolves to a non-public"):
        client.get(f"http://localhost:{server}/")


@pytest.mark.parametrize("host, why", [("evil.example", "private"), ("meta.example", "metadata"),
                                       ("inside.example", "loopback"), ("v6.example", "loopback"),
                                       ("ula.example", "private")])
def test_client_refuses_names_resolving_to_internal_addresses(names, host, why):
    with guarded_client() as client, pytest.raises(Blocked, match=why):
        client.get(f"http://{host}:80/")


def test_allowed_host_connects_to_the_checked_address_and_keeps_the_host_header(server, names):
    with guarded_client(allow_hosts=["inside.example"]) as client:
        resp = client.get(f"http://inside.example:{server}/")
    assert resp.status_code == 200
    assert resp.text == f"host=inside.example:{server}"  # Host header kept, address from our lookup
    assert names.count("inside.example") == 1  # resolved once, at connect time


def test_allow_list_by_address_and_network(server):
    for allow in (["127.0.0.1"], ["127.0.0.0/8"]):
        with guarded_client(allow_hosts=allow) as client:
            assert client.get(f"http://localhost:{server}/").status_code == 200


def test_redirects_are_not_followed(server):
    with guarded_client(allow_hosts=["127.0.0.1"]) as client:
        resp = client.get(f"http://127.0.0.1:{server}/redirect")
    assert resp.status_code == 302 and not resp.history
    assert client.follow_redirects is False


def test_environment_proxies_are_ignored(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.9.9.9:3128")
    with guarded_client(allow_hosts=["127.0.0.1"]) as client:
        assert client.get(f"http://127.0.0.1:{server}/").status_code == 200


def test_async_client_guards_the_same_way(server, names):
    async def run() -> None:
        async with guarded_async_client() as client:
            with pytest.raises(Blocked):
                await client.get(f"http://127.0.0.1:{server}/")
            with pytest.raises(Blocked):
                await client.get(f"http://evil.example:{server}/")
        async with guarded_async_client(allow_hosts=["inside.example"]) as client:
            resp = await client.get(f"http://inside.example:{server}/")
            assert resp.text == f"host=inside.example:{server}"
            assert client.follow_redirects is False

    asyncio.run(run())


# --------------------------------------------------------------------------- fetch
def test_fetch_reads_capped_and_refuses_redirects(server):
    allow = ["127.0.0.1"]
    data, ctype = fetch(f"http://127.0.0.1:{server}/", allow_hosts=allow, max_bytes=100)
    assert data == f"host=127.0.0.1:{server}".encode() and ctype == "text/plain"
    with pytest.raises(FetchError, match="limit"):
        fetch(f"http://127.0.0.1:{server}/big", allow_hosts=allow, max_bytes=1000)
    with pytest.raises(FetchError) as err:
        fetch(f"http://127.0.0.1:{server}/redirect", allow_hosts=allow, max_bytes=1000)
    assert err.value.status_code == 302
    with pytest.raises(Blocked):
        fetch(f"http://127.0.0.1:{server}/", max_bytes=100)


def test_fetch_connection_failure_is_a_fetch_error():
    with pytest.raises(FetchError):
        fetch("http://127.0.0.1:9/", allow_hosts=["127.0.0.1"], max_bytes=10, timeout=2)


def test_settings_parse_the_allow_list(monkeypatch):
    from core.settings import Settings

    monkeypatch.setenv("VISIONGATE_OUTBOUND_ALLOW_HOSTS", "127.0.0.1, localhost")
    assert Settings().outbound_allow_hosts == ["127.0.0.1", "localhost"]
    monkeypatch.setenv("VISIONGATE_OUTBOUND_ALLOW_HOSTS", '["10.0.0.0/8"]')
    assert Settings().outbound_allow_hosts == ["10.0.0.0/8"]
    monkeypatch.delenv("VISIONGATE_OUTBOUND_ALLOW_HOSTS")
    assert Settings().outbound_allow_hosts == []
