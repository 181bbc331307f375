"""The endpoint checks against real servers on 127.0.0.1: HTTP(S), TLS, TCP, ICMP, DNS.

Certificates come from ``tests/pki.py``: a test CA (trusted through
``MonitoringIntegration(ca_file=…)``), leaves it signs (valid, expiring in 3
days, expired 3 days ago, issued for another name) and a self-signed one.
No traffic leaves 127.0.0.0/8: names are ``localhost`` (``/etc/hosts``) or
under ``.invalid``, which the checks answer without asking a name server.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import integrations
from calcifer_bot import http
from calcifer_bot.config import load_settings
from calcifer_bot.errors import IntegrationError, UsageError
from integrations.base import Reachability
from integrations.monitoring import (
    KINDS,
    MonitoringIntegration,
    Result,
    Target,
    generate_endpoint_documentation,
    judge_certificate,
    parse_probe_line,
    parse_target,
    push_result,
)
from tests.pki import DAY, Pki

LOCAL = "127.0.0.1"

# --------------------------------------------------------------------------- certificates


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    now = pki.now
    pki.leaf("valid")  # for 127.0.0.1 and localhost, from a day ago for 300 days
    pki.leaf("expiring", not_after=now + 3 * DAY + timedelta(hours=1))
    pki.leaf("expired", not_before=now - 30 * DAY, not_after=now - 3 * DAY - timedelta(hours=1))
    pki.leaf("wrongname", names=("a.invalid",))
    pki.leaf("selfsigned", self_signed=True)
    return pki


# --------------------------------------------------------------------------- servers


@dataclass
class Servers:
    http: int
    tls: dict[str, int]
    in_flight: int = 0
    most_in_flight: int = 0

    def url(self, path: str) -> str:
        return f"http://{LOCAL}:{self.http}{path}"

    def https(self, cert: str, path: str = "/ok") -> str:
        return f"https://{LOCAL}:{self.tls[cert]}{path}"


def _app(servers: list[Servers]) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="all ok: banana")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="late")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        if left:
            raise web.HTTPFound(f"/hop/{left - 1}")
        return web.Response(text="arrived")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (1024 * 1024 + 10) + b"banana")

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(b"compressed banana")
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def busy(request: web.Request) -> web.Response:
        state = servers[0]
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        await asyncio.sleep(0.05)
        state.in_flight -= 1
        return web.Response(text="done")

    app = web.Application()
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/fail", fail),
            web.get("/slow", slow),
            web.get("/loop", loop),
            web.get("/hop/{n}", hop),
            web.get("/big", big),
            web.get("/gzip", gzipped),
            web.get("/busy", busy),
        ]
    )
    return app


def _port(site: web.TCPSite) -> int:
    server = site._server
    assert isinstance(server, asyncio.Server)
    return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def servers(pki: Pki) -> AsyncIterator[Servers]:
    holder: list[Servers] = []
    # handler_cancellation: a client that gave up on /slow ends the handler too.
    runner = web.AppRunner(_app(holder), handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    plain = web.TCPSite(runner, LOCAL, 0)
    await plain.start()
    tls = {}
    for name in pki.leaves:
        site = web.TCPSite(runner, LOCAL, 0, ssl_context=pki.server_context(name))
        await site.start()
        tls[name] = _port(site)
    holder.append(Servers(_port(plain), tls))
    yield holder[0]
    await runner.cleanup()


@pytest.fixture
async def monitoring(pki: Pki) -> AsyncIterator[MonitoringIntegration]:
    checks = MonitoringIntegration(ca_file=str(pki.ca_file))
    yield checks
    await checks.close()
    await http.close()


def target(kind: str, text: str, **options: Any) -> Target:
    return parse_target(kind, text, **options)


# --------------------------------------------------------------------------- HTTP


async def test_http_up_measures_latency(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    result = await monitoring.check(target("http", servers.url("/ok")))

    assert result.ok, result
    assert result.error is None and result.warning is None
    assert result.latency_ms is not None and 0 < result.latency_ms < 1000


async def test_http_status_outside_the_expected_range_is_down(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    down = await monitoring.check(target("http", servers.url("/fail")))
    expected = await monitoring.check(target("http", servers.url("/fail"), expect="500-599"))

    assert not down.ok and down.error == "HTTP 503"
    assert down.latency_ms is not None, "the server answered: its latency is worth keeping"
    assert expected.ok


async def test_http_slow_answer_times_out(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    result = await monitoring.check(target("http", servers.url("/slow"), timeout_s=0.3))

    assert result == Result(False, error="timed out after 0.3 s")


async def test_http_listener_that_never_answers_times_out(
    monitoring: MonitoringIntegration, silent_port: int
) -> None:
    result = await monitoring.check(target("http", f"http://{LOCAL}:{silent_port}/", timeout_s=1))

    assert result == Result(False, error="timed out after 1 s")


async def test_http_closed_port_is_refused(
    monitoring: MonitoringIntegration, closed_port: int
) -> None:
    result = await monitoring.check(target("http", f"{LOCAL}", port=closed_port))

    assert result == Result(False, error="connection refused")


@pytest.mark.parametrize(
    ("path", "keyword", "error"),
    [
        ("/ok", "banana", None),
        ("/ok", "cherry", "keyword 'cherry' not found"),
        ("/gzip", "compressed banana", None),
        ("/big", "banana", "keyword 'banana' not found in the first 1 MB"),
    ],
    ids=["found", "missing", "gzip-body", "past-1MB"],
)
async def test_http_keyword(
    monitoring: MonitoringIntegration,
    servers: Servers,
    path: str,
    keyword: str,
    error: str | None,
) -> None:
    result = await monitoring.check(target("http", servers.url(path), keyword=keyword))

    assert result.ok is (error is None)
    assert result.error == error


@pytest.mark.parametrize(
    ("path", "limit", "error"),
    [
        ("/hop/3", 3, None),
        ("/hop/4", 3, "too many redirects (more than 3)"),
        ("/loop", 10, "too many redirects (more than 10)"),
        ("/hop/1", 0, None),  # not followed: the 302 itself is within 200-399
    ],
    ids=["within-limit", "one-too-many", "loop", "not-followed"],
)
async def test_http_redirects(
    monitoring: MonitoringIntegration,
    servers: Servers,
    path: str,
    limit: int,
    error: str | None,
) -> None:
    result = await monitoring.check(target("http", servers.url(path), max_redirects=limit))

    assert result.error == error
    assert result.ok is (error is None)


async def test_http_not_following_redirects_reports_the_status(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    t = target("http", servers.url("/hop/1"), max_redirects=0, expect="200")

    result = await monitoring.check(t)

    assert (result.ok, result.error) == (False, "HTTP 302")


# --------------------------------------------------------------------------- HTTPS and TLS


async def test_https_self_signed_fails_verification_unless_insecure(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    url = servers.https("selfsigned")

    verified = await monitoring.check(target("https", url))
    insecure = await monitoring.check(target("https", url, verify_tls=False))

    assert verified == Result(False, error="certificate verify failed: self-signed certificate")
    assert insecure.ok, insecure


async def test_https_trusted_certificate(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    result = await monitoring.check(target("https", servers.https("valid"), keyword="banana"))

    assert result.ok, result
    assert result.warning is None


async def test_https_name_mismatch(monitoring: MonitoringIntegration, servers: Servers) -> None:
    result = await monitoring.check(target("https", servers.https("wrongname")))

    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("certificate verify failed: ")
    assert "mismatch" in result.error


@pytest.mark.parametrize(
    ("cert", "verify", "ok", "error", "warning"),
    [
        ("valid", True, True, None, None),
        ("expiring", True, True, None, "certificate expires in 3 days"),
        ("expired", True, False, "certificate expired 3 days ago", None),
        ("expired", False, False, "certificate expired 3 days ago", None),
        ("selfsigned", True, False, "certificate verify failed: self-signed certificate", None),
        ("selfsigned", False, True, None, None),
    ],
)
async def test_tls_certificate(
    monitoring: MonitoringIntegration,
    servers: Servers,
    cert: str,
    verify: bool,
    ok: bool,
    error: str | None,
    warning: str | None,
) -> None:
    t = target("tls", f"{LOCAL}:{servers.tls[cert]}", verify_tls=verify, timeout_s=2)

    result = await monitoring.check(t)

    assert (result.ok, result.error, result.warning) == (ok, error, warning)
    assert (result.latency_ms is not None) is (ok or "expired" in (error or ""))


async def test_tls_warning_threshold_is_configurable(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    t = target("tls", f"{LOCAL}:{servers.tls['expiring']}", warn_days=2)

    assert (await monitoring.check(t)).warning is None


async def test_tls_handshake_never_answered_times_out(
    monitoring: MonitoringIntegration, silent_port: int
) -> None:
    result = await monitoring.check(target("tls", f"{LOCAL}:{silent_port}", timeout_s=0.3))

    assert result == Result(False, error="timed out after 0.3 s")


def test_certificate_judgement_in_hours_on_the_last_day(pki: Pki) -> None:
    der = x509.load_pem_x509_certificate(pki.leaves["expiring"].cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    t = target("tls", "h:443")
    after = x509.load_der_x509_certificate(der).not_valid_after_utc

    assert judge_certificate(der, t, 1.0, now=after - timedelta(hours=5)).warning == (
        "certificate expires in 5 hours"
    )
    assert judge_certificate(der, t, 1.0, now=after + timedelta(minutes=5)).error == (
        "certificate expired less than an hour ago"
    )
    assert judge_certificate(b"junk", t, None).error == (
        "the server sent a certificate that cannot be read"
    )


# --------------------------------------------------------------------------- TCP


async def test_tcp_open_and_closed(
    monitoring: MonitoringIntegration, servers: Servers, closed_port: int
) -> None:
    up = await monitoring.check(target("tcp", f"{LOCAL}:{servers.http}"))
    refused = await monitoring.check(target("tcp", LOCAL, port=closed_port))

    assert up.ok and up.latency_ms is not None
    assert refused == Result(False, error="connection refused")


async def test_tcp_by_name_and_ipv6_literal(
    monitoring: MonitoringIntegration, servers: Servers
) -> None:
    assert (await monitoring.check(target("tcp", f"localhost:{servers.http}"))).ok
    with socket.socket(socket.AF_INET6) as v6:
        try:
            v6.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
        v6.listen(4)
        port = v6.getsockname()[1]
        assert (await monitoring.check(target("tcp", f"[::1]:{port}"))).ok


# --------------------------------------------------------------------------- fresh connections


async def test_every_check_opens_a_fresh_connection(monitoring: MonitoringIntegration) -> None:
    """A server that keeps every connection alive, whatever the client asks: if the
    client reused one, fewer connections than requests would arrive."""
    connections = 0
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, requests
        connections += 1
        try:
            while (await reader.readuntil(b"\r\n\r\n")).strip():
                requests += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, LOCAL, 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://{LOCAL}:{port}/"
    try:
        # An API call first: its connection must not be handed to a check either.
        assert (await http.request("GET", url)).body == b"ok"
        for _ in range(3):
            assert (await monitoring.check(target("http", url))).ok
        results = await monitoring.sweep([target("http", url)] * 5, concurrency=5)
        assert all(r.ok for r in results)
        await asyncio.sleep(0.05)
    finally:
        server.close()
        await server.wait_closed()

    assert requests == 9
    assert connections == 9


# --------------------------------------------------------------------------- sweep


async def test_sweep_keeps_input_order_and_bounds_concurrency(
    monitoring: MonitoringIntegration, servers: Servers, closed_port: int
) -> None:
    busy = [target("http", servers.url("/busy")) for _ in range(12)]
    refused = target("tcp", LOCAL, port=closed_port)
    seen: list[int] = []

    results = await monitoring.sweep(
        [*busy[:6], refused, *busy[6:]], concurrency=4, on_result=lambda i, r: seen.append(i)
    )

    assert [r.ok for r in results] == [True] * 6 + [False] + [True] * 6
    assert results[6].error == "connection refused"
    assert sorted(seen) == list(range(13))
    assert 1 < servers.most_in_flight <= 4


async def test_push_targets_are_not_checked(monitoring: MonitoringIntegration) -> None:
    with pytest.raises(ValueError, match="push_result"):
        await monitoring.check(target("push", ""))
    with pytest.raises(ValueError):
        await monitoring.sweep([target("push", "")])


async def test_check_endpoint_reads_a_stored_row(
    monitoring: MonitoringIntegration, servers: Servers, closed_port: int
) -> None:
    text, port, options = target("http", servers.url("/ok"), keyword="cherry").stored
    row = SimpleNamespace(kind="http", target=text, port=port, timeout_s=2.0, options=options)
    refused = SimpleNamespace(kind="tcp", target=LOCAL, port=closed_port, timeout_s=1, options={})
    broken = SimpleNamespace(kind="tcp", target=LOCAL, port=None, timeout_s=1, options={})

    assert await monitoring.check_endpoint(row) == (False, "keyword 'cherry' not found")
    assert await monitoring.check_endpoint(refused) == (False, "connection refused")
    ok, message = await monitoring.check_endpoint(broken)
    assert not ok and message == "invalid endpoint: tcp needs a port: HOST:PORT or --port N"


# --------------------------------------------------------------------------- ICMP


@pytest.fixture
async def icmp(monitoring: MonitoringIntegration) -> MonitoringIntegration:
    connectivity = await monitoring.check_connectivity()
    if not connectivity:
        pytest.skip(f"no ICMP socket here: {connectivity.detail}")
    return monitoring


async def test_icmp_to_loopback(icmp: MonitoringIntegration) -> None:
    result = await icmp.check(target("icmp", LOCAL))

    assert result.ok, result
    assert result.latency_ms is not None and result.latency_ms < 100


async def test_icmp_many_concurrent_pings_share_one_socket(icmp: MonitoringIntegration) -> None:
    # All of 127.0.0.0/8 answers on Linux: 200 distinct destinations, one sweep.
    targets = [target("network", f"127.0.0.{i}", timeout_s=2) for i in range(1, 201)]
    fds_before = len(os.listdir("/proc/self/fd"))

    results = await icmp.sweep(targets, concurrency=200)

    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    assert len(os.listdir("/proc/self/fd")) - fds_before <= 1


async def test_icmp_connectivity_names_the_socket_kind(icmp: MonitoringIntegration) -> None:
    connectivity = await icmp.check_connectivity()

    assert connectivity.state is Reachability.OK
    assert connectivity.detail in (
        "ICMP: privileged raw socket",
        "ICMP: unprivileged datagram socket",
    )


async def test_icmp_name_that_cannot_resolve(icmp: MonitoringIntegration) -> None:
    result = await icmp.check(target("icmp", "nowhere.invalid"))

    assert result == Result(False, error="cannot resolve host 'nowhere.invalid'")


# The unprivileged path needs a network namespace of its own: the sysctl is set there
# (loopback only), and CAP_NET_RAW is dropped so a raw socket is refused as for a user.
_NETNS_SETUP = """
import os, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
    f.write(sys.argv[1])
command = [sys.executable, "-c", sys.argv[3], sys.argv[2]]
os.execvp("setpriv", ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", *command])
"""
_NETNS_CHECK = """
import asyncio, json, sys
from integrations.monitoring import MonitoringIntegration, parse_target
async def main():
    checks = MonitoringIntegration(icmp_privileged={"auto": None, "datagram": False}[sys.argv[1]])
    connectivity = await checks.check_connectivity()
    result = await checks.check(parse_target("icmp", "127.0.0.1", timeout_s=1))
    await checks.close()
    print(json.dumps({"state": str(connectivity.state), "detail": connectivity.detail,
                      "ok": result.ok, "error": result.error}))
asyncio.run(main())
"""


def _in_netns(group_range: str, mode: str) -> dict[str, Any]:
    if not (shutil.which("unshare") and shutil.which("setpriv") and shutil.which("ip")):
        pytest.skip("needs unshare, setpriv and ip")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _NETNS_SETUP, group_range, mode, _NETNS_CHECK],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a network namespace: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("mode", ["auto", "datagram"])
def test_icmp_unprivileged_datagram_socket(mode: str) -> None:
    outcome = _in_netns("0 2147483647", mode)

    assert outcome == {
        "state": "ok",
        "detail": "ICMP: unprivileged datagram socket",
        "ok": True,
        "error": None,
    }


def test_icmp_without_any_socket_names_the_sysctl() -> None:
    outcome = _in_netns("1 0", "auto")

    assert outcome["state"] == "cannot connect"
    assert "net.ipv4.ping_group_range (now '1 0')" in outcome["detail"]
    assert not outcome["ok"]
    assert outcome["error"] == outcome["detail"]


# --------------------------------------------------------------------------- DNS


@pytest.mark.parametrize(
    ("name", "expect", "error"),
    [
        ("localhost", None, None),
        ("localhost", "127.0.0.1", None),
        ("localhost", "10.9.9.9", "'localhost' resolves to 127.0.0.1, not 10.9.9.9"),
        ("nothing.invalid", None, "cannot resolve host 'nothing.invalid'"),
    ],
    ids=["resolves", "expected-address", "other-address", "invalid-tld"],
)
async def test_dns(
    monitoring: MonitoringIntegration, name: str, expect: str | None, error: str | None
) -> None:
    result = await monitoring.check(target("dns", name, expect_address=expect))

    if error and "resolves to" in error:
        # Some hosts also list ::1 for localhost: compare the part that must hold.
        assert result.error is not None and result.error.endswith("not 10.9.9.9")
        assert "127.0.0.1" in result.error
    else:
        assert result.error == error
    assert result.ok is (error is None)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("kind", "text", "options", "message"),
    [
        ("htp", "x", {}, "unknown type 'htp'; expected one of icmp (alias network), tcp, "
         "http, https, dns, tls, push"),
        ("icmp", "ex ample", {}, "'ex ample' is not a valid host name or IP address"),
        ("icmp", "300.1.1.1", {}, "'300.1.1.1' is not a valid host name or IP address"),
        ("icmp", "", {}, "icmp needs a target: a host name or IP address"),
        ("icmp", "nas", {"port": 22}, "icmp takes no port (use tcp to check a port)"),
        ("http", "http://", {}, "'http://' is not a valid URL: it has no host"),
        ("http", "ftp://nas/", {}, "http needs an http:// or https:// URL (got 'ftp://nas/')"),
        ("http", "http://nas:99999/", {}, "port must be between 1 and 65535 (got 99999)"),
        ("http", "http://nas:80/", {"port": 81}, "port given twice: 80 in the URL and --port 81"),
        ("tcp", "nas", {}, "tcp needs a port: HOST:PORT or --port N"),
        ("tls", "nas", {}, "tls needs a port: HOST:PORT or --port N"),
        ("tcp", "nas:0", {}, "port must be between 1 and 65535 (got 0)"),
        ("tcp", "nas", {"port": 70000}, "port must be between 1 and 65535 (got 70000)"),
        ("tcp", "nas:ssh", {}, "'ssh' is not a port number"),
        ("tcp", "[::1", {}, "'[::1' is not a valid address: ']' is missing"),
        ("tcp", "nas:22", {"port": 23}, "port given twice: 22 in the target and --port 23"),
        ("tcp", "http://nas:22", {}, "tcp takes HOST:PORT, not a URL (got 'http://nas:22')"),
        ("http", "nas", {"expect": "abc"}, "--expect must be an HTTP status or range from 100 "
         "to 599, such as 200, 200-399 or 2xx (got 'abc')"),
        ("http", "nas", {"expect": "399-200"}, "--expect must be an HTTP status or range from "
         "100 to 599, such as 200, 200-399 or 2xx (got '399-200')"),
        ("http", "nas", {"expect": "700"}, "--expect must be an HTTP status or range from 100 "
         "to 599, such as 200, 200-399 or 2xx (got '700')"),
        ("tcp", "nas:22", {"expect": "200"}, "--expect is for http and https checks, not tcp"),
        ("icmp", "nas", {"keyword": "x"}, "--keyword is for http and https checks, not icmp"),
        ("http", "nas", {"keyword": ""}, "--keyword must not be empty"),
        ("http", "nas", {"max_redirects": -1}, "--max-redirects must be 0 or more (got -1)"),
        ("https", "nas", {"warn_days": 3}, "--warn-days is for tls checks, not https"),
        ("tcp", "nas:1", {"verify_tls": False}, "--insecure is for http, https and tls checks, "
         "not tcp"),
        ("dns", "nas", {"expect_address": "nas"}, "--address must be an IP address "
         "(got 'nas')"),
        ("dns", "10.0.0.1", {}, "dns needs a name to resolve, not an address (got '10.0.0.1')"),
        ("dns", "nas", {"port": 53}, "dns takes no port"),
        ("icmp", "nas", {"timeout_s": -1}, "--timeout must be more than 0 seconds (got -1)"),
        ("icmp", "nas", {"timeout_s": 0}, "--timeout must be more than 0 seconds (got 0)"),
        ("push", "nas", {}, "push takes no target: the reply gives the URL to push to"),
    ],
)  # fmt: skip
def test_parse_target_errors(kind: str, text: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_target(kind, text, **options)

    assert caught.value.message == message


@pytest.mark.parametrize(
    ("kind", "text", "options", "display", "host", "port"),
    [
        ("network", "NAS.lan", {}, "icmp://nas.lan", "nas.lan", None),
        ("icmp", "::1", {}, "icmp://[::1]", "::1", None),
        ("icmp", "bücher.example", {}, "icmp://bücher.example", "bücher.example", None),
        ("tcp", "nas:22", {}, "tcp://nas:22", "nas", 22),
        ("tcp", "nas", {"port": 22}, "tcp://nas:22", "nas", 22),
        ("tcp", "[::1]:80", {}, "tcp://[::1]:80", "::1", 80),
        ("tcp", "::1", {"port": 80}, "tcp://[::1]:80", "::1", 80),
        ("tcp", "tcp://nas:22", {}, "tcp://nas:22", "nas", 22),
        ("tls", "nas:443", {}, "tls://nas:443", "nas", 443),
        ("http", "https://nas/health?x=1", {}, "https://nas/health?x=1", "nas", 443),
        ("https", "nas", {}, "https://nas", "nas", 443),
        ("http", "nas", {"port": 8080}, "http://nas:8080", "nas", 8080),
        ("http", "nas:8080/status", {}, "http://nas:8080/status", "nas", 8080),
        ("http", "http://[::1]:8080/", {}, "http://[::1]:8080/", "::1", 8080),
        ("http", "http://u:secret@nas/", {}, "http://u:***@nas/", "nas", 80),
        ("dns", "nas.lan.", {}, "dns://nas.lan.", "nas.lan.", None),
        ("push", "", {}, "push", "", None),
    ],
)
def test_parse_target_accepts(
    kind: str, text: str, options: dict[str, Any], display: str, host: str, port: int | None
) -> None:
    t = parse_target(kind, text, **options)

    assert (t.display, t.host, t.port) == (display, host, port)
    assert t.kind in KINDS


def test_the_url_scheme_decides_between_http_and_https() -> None:
    assert parse_target("http", "https://nas/").kind == "https"
    assert parse_target("https", "http://nas/").kind == "http"
    assert parse_target("https", "nas").url == "https://nas"


@pytest.mark.parametrize(
    "t",
    [
        parse_target("icmp", "nas", timeout_s=2),
        parse_target("tcp", "[::1]:22"),
        parse_target("tls", "nas:8443", warn_days=30, verify_tls=False),
        parse_target("https", "https://nas/x", expect="200-299", keyword="ok", max_redirects=0),
        parse_target("https", "nas", port=443),
        parse_target("http", "nas", port=8080, verify_tls=False),
        parse_target("http", "http://nas/", expect="2xx"),
        parse_target("dns", "nas.lan", expect_address="10.0.0.5"),
        parse_target("push", ""),
    ],
    ids=lambda t: t.display,
)
def test_stored_round_trip(t: Target) -> None:
    text, port, options = t.stored

    assert json.loads(json.dumps(options)) == options
    assert Target.from_stored(t.kind, text, port, t.timeout_s, options) == t


def test_stored_keeps_only_what_differs_from_the_defaults() -> None:
    assert parse_target("http", "http://nas/").stored == ("http://nas/", 80, {})
    assert parse_target("tls", "nas:443", warn_days=30).stored == ("nas", 443, {"warn_days": 30})
    assert parse_target("http", "nas", expect="200").stored[2] == {"expect": "200"}


def test_from_stored_ignores_options_it_does_not_know() -> None:
    t = Target.from_stored("icmp", "nas", None, 5.0, {"from_a_newer_version": 1})

    assert t == parse_target("icmp", "nas")


@pytest.mark.parametrize(
    ("line", "display"),
    [
        ("icmp://10.0.0.1", "icmp://10.0.0.1"),
        ("  tcp://nas:22  ", "tcp://nas:22"),
        ("https://nas/health", "https://nas/health"),
        ("http://nas:8080", "http://nas:8080"),
        ("tls://nas:443", "tls://nas:443"),
        ("dns://nas.lan", "dns://nas.lan"),
        ("icmp://[::1]", "icmp://[::1]"),
    ],
)
def test_parse_probe_line(line: str, display: str) -> None:
    assert parse_probe_line(line).display == display


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("nas", "expected icmp://HOST, tcp://HOST:PORT or an http(s):// URL, got 'nas'"),
        ("tcp://nas", "tcp needs a port: tcp://HOST:PORT"),
        ("ftp://nas", "unknown scheme 'ftp://'; expected icmp, tcp, http, https, tls or dns"),
        ("push://x", "unknown scheme 'push://'; expected icmp, tcp, http, https, tls or dns"),
        ("icmp://", "icmp needs a target: a host name or IP address"),
    ],
)
def test_parse_probe_line_errors(line: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_probe_line(line)

    assert caught.value.message == message


# --------------------------------------------------------------------------- push


def test_push_result() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    assert push_result(None, 60, now) == Result(False, error="no push received yet")
    assert push_result(now - timedelta(seconds=59), 60, now).ok
    assert push_result(now - timedelta(seconds=60), 60, now).ok
    assert push_result(now - timedelta(minutes=5), 60, now) == Result(
        False, error="no push for 5 min (expected every 1 min)"
    )
    assert push_result(now - timedelta(minutes=90), 3600, now).error == (
        "no push for 1 h 30 min (expected every 1 h)"
    )
    naive = (now - timedelta(seconds=10)).replace(tzinfo=None)  # as SQLite returns it
    assert push_result(naive, 60, now).ok


# --------------------------------------------------------------------------- documentation


def _endpoint(kind: str, target: str, port: int | None = None, **extra: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "name": "nas-web",
        "kind": kind,
        "target": target,
        "port": port,
        "interval_s": 60.0,
        "timeout_s": 5.0,
        "failures": 3,
        "successes": 2,
        "service": "nas",
        "group_name": None,
        "channel": "slack:C123",
        "options": {},
    }
    return SimpleNamespace(**{**fields, **extra})


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (_endpoint("tcp", "nas", 22), ["tcp://nas:22", "ss -ltnp", "Firewall", "3 consecutive"]),
        (_endpoint("https", "https://nas/", 443), ["curl -v 'https://nas/'", "openssl s_client"]),
        (_endpoint("tls", "nas", 443, options={"warn_days": 30}), ["openssl s_client", "30 days"]),
        (_endpoint("icmp", "nas"), ["ping -c 3 nas", "ip route get nas"]),
        (_endpoint("dns", "nas.lan"), ["dig nas.lan", "resolvectl"]),
        (_endpoint("push", ""), ["push URL", "a push at least every 1 min"]),
    ],
    ids=lambda e: e.kind if isinstance(e, SimpleNamespace) else "",
)
def test_endpoint_documentation(endpoint: SimpleNamespace, expected: list[str]) -> None:
    doc = generate_endpoint_documentation(endpoint)

    assert doc.startswith("# nas-web\n")
    for section in ("## When it alerts", "## Troubleshooting"):
        assert section in doc
    assert "slack:C123" in doc and "| Service | nas |" in doc
    for text in expected:
        assert text in doc, text


def test_documentation_of_a_broken_row_says_so() -> None:
    doc = generate_endpoint_documentation(_endpoint("tcp", "nas"))

    assert "not valid any more" in doc


# --------------------------------------------------------------------------- the shared HTTP client


async def test_request_translates_failures(servers: Servers, closed_port: int) -> None:
    try:
        with pytest.raises(IntegrationError) as refused:
            await http.request("GET", f"http://{LOCAL}:{closed_port}/hooks/SECRET-TOKEN")
        with pytest.raises(http.HTTPStatusError) as unavailable:
            await http.request("GET", servers.url("/fail"))
        with pytest.raises(http.HTTPStatusError) as missing:
            await http.request("GET", servers.url("/nothing/SECRET-TOKEN"))
        with pytest.raises(IntegrationError) as slow:
            await http.request("GET", servers.url("/slow"), timeout_s=0.2)
        ok = await http.request("GET", servers.url("/ok"))
    finally:
        await http.close()

    assert refused.value.message == f"{LOCAL}: connection refused"
    assert not refused.value.permanent
    assert "SECRET-TOKEN" not in refused.value.message + missing.value.message
    assert (unavailable.value.status, unavailable.value.permanent) == (503, False)
    assert unavailable.value.message == f"{LOCAL} answered HTTP 503: down for maintenance"
    assert (missing.value.status, missing.value.permanent) == (404, True)
    assert slow.value.message == f"{LOCAL} did not answer within 0.2 s" and not slow.value.permanent
    assert ok.text() == "all ok: banana"


def test_monitoring_is_a_registered_singleton(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(integrations, "_instances", {})
    monkeypatch.setattr(integrations, "_settings", None)
    integrations.configure(
        load_settings(environ={"CALCIFER_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"})
    )

    from integrations import monitoring

    singleton = integrations.get("monitoring")
    assert isinstance(singleton, MonitoringIntegration)
    assert integrations.get("monitoring") is singleton
    # Once imported, the package attribute is the module; it forwards to the singleton.
    assert monitoring.check.__self__ is singleton
    assert monitoring.name == "monitoring"
    assert not hasattr(monitoring, "no_such_thing")
