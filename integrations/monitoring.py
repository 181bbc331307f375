"""Checks: ICMP, TCP, HTTP(S), TLS expiry, DNS and push heartbeats.

The alert engine stores endpoints as ``Target.stored`` and asks
:meth:`MonitoringIntegration.check` (one) or :meth:`~MonitoringIntegration.sweep`
(many, bounded concurrency) for a :class:`Result`; a failed check is a Result,
never an exception. Push endpoints are not checked: :func:`push_result` judges
the time of the last push.

Every check really tests reachability: HTTPS, and HTTP with a keyword or a
redirect to follow, go through the process's one aiohttp session, whose
connector never reuses a connection (:mod:`calcifer_bot.http`); a plain-HTTP
check of the status alone sends the session's request on a connection of its
own and reads the response head (:func:`calcifer_bot.http.read_head`); TCP and
TLS open a socket of their own; ICMP sends a real echo request. The pings of a
sweep share one ICMP socket per address family, their replies matched by
identifier and sequence number, so a thousand concurrent pings cost one file
descriptor.

A sweep checks thousands of targets at once, so the per-check cost is kept
small (``benchmarks/bench_checks.py`` measures it): addresses skip the resolver,
a connection the kernel completes at once (a local server) is not waited for,
time limits share one timer (:class:`_Deadlines`), echo requests come from a
template and replies are matched without icmplib's objects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import errno
import ipaddress
import logging
import math
import os
import platform
import re
import select
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import aiohappyeyeballs
import aiohttp
from cryptography import x509
from icmplib import ICMPError, ICMPReply, ICMPSocketError, SocketPermissionError
from icmplib.sockets import ICMPSocket, ICMPv4Socket, ICMPv6Socket
from icmplib.utils import unique_identifier
from yarl import URL

from calcifer_bot import http
from calcifer_bot.errors import UsageError
from calcifer_bot.http import describe_client_error, describe_os_error, tidy
from integrations.base import Connectivity, Integration, Reachability

if TYPE_CHECKING:
    from calcifer_bot.config import Settings
    from calcifer_bot.db import Database

log = logging.getLogger(__name__)

KINDS = ("icmp", "tcp", "http", "https", "dns", "tls", "push")
ALIASES = {"network": "icmp"}

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_EXPECT = (200, 399)
DEFAULT_MAX_REDIRECTS = 10
DEFAULT_WARN_DAYS = 14
KEYWORD_BODY_LIMIT = 1024 * 1024  # enough for any status page; a keyword past it is a bad check
PING_GROUP_RANGE = "/proc/sys/net/ipv4/ping_group_range"

_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_URL_PORT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*:(\d+)(?:[/?#]|$)")
_X509_V_ERR_CERT_HAS_EXPIRED = 10
_HTTP_ONLY = ("http", "https")
_YIELD_EVERY = 32  # checks a sweep's worker runs back to back at most
_HAPPY_EYEBALLS_DELAY = 0.25  # aiohttp's, for the plain-HTTP checks made without it
_REQUESTS_KEPT = 20_000  # request heads kept for plain-HTTP checks (a few hundred bytes each)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to check, validated: build it with :func:`parse_target`."""

    kind: str
    host: str
    port: int | None = None
    url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    expect: tuple[int, int] = DEFAULT_EXPECT
    keyword: str | None = None
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    verify_tls: bool = True
    warn_days: int = DEFAULT_WARN_DAYS
    expect_address: str | None = None

    @property
    def display(self) -> str:
        """How people see it, and what ``calcifer probe`` reads back."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.kind in _HTTP_ONLY:
            url = URL(self.url or "")
            return str(url.with_password("***")) if url.password else str(url)
        if self.kind in ("tcp", "tls"):
            return f"{self.kind}://{host}:{self.port}"
        if self.kind == "push":
            return "push"
        return f"{self.kind}://{host}"

    @property
    def stored(self) -> tuple[str, int | None, dict[str, Any]]:
        """(target text, port, options that differ from the defaults) for the endpoints table."""
        text = self.url if self.kind in _HTTP_ONLY else self.host
        options: dict[str, Any] = {}
        if self.expect != DEFAULT_EXPECT:
            options["expect"] = _format_expect(self.expect)
        if self.keyword is not None:
            options["keyword"] = self.keyword
        if self.max_redirects != DEFAULT_MAX_REDIRECTS:
            options["max_redirects"] = self.max_redirects
        if not self.verify_tls:
            options["verify_tls"] = False
        if self.warn_days != DEFAULT_WARN_DAYS:
            options["warn_days"] = self.warn_days
        if self.expect_address is not None:
            options["expect_address"] = self.expect_address
        return text or "", self.port, options

    @classmethod
    def from_stored(
        cls, kind: str, target: str, port: int | None, timeout_s: float, options: dict[str, Any]
    ) -> Target:
        """The reverse of :attr:`stored`; options a newer version wrote are ignored."""
        known = {k: v for k, v in (options or {}).items() if k in _OPTION_NAMES}
        return parse_target(kind, target, port=port, timeout_s=timeout_s, **known)


_OPTION_NAMES = frozenset(
    {"expect", "keyword", "max_redirects", "verify_tls", "warn_days", "expect_address"}
)


def parse_target(
    kind: str,
    target: str,
    *,
    port: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    expect: str | None = None,
    keyword: str | None = None,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    verify_tls: bool = True,
    warn_days: int = DEFAULT_WARN_DAYS,
    expect_address: str | None = None,
) -> Target:
    """Validate what a user typed (``endpoint add``, TOML, probe lines) into a Target.

    Raises :class:`UsageError` with a short message naming what is wrong.
    """
    kind = _parse_kind(kind)
    text = (target or "").strip()
    if port is not None:
        port = _check_port(port)
    if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
        raise UsageError(f"--timeout must be more than 0 seconds (got {timeout_s!r})")
    _check_applies(kind, expect is not None, "--expect", _HTTP_ONLY)
    _check_applies(kind, keyword is not None, "--keyword", _HTTP_ONLY)
    _check_applies(kind, max_redirects != DEFAULT_MAX_REDIRECTS, "--max-redirects", _HTTP_ONLY)
    _check_applies(kind, not verify_tls, "--insecure", ("http", "https", "tls"))
    _check_applies(kind, warn_days != DEFAULT_WARN_DAYS, "--warn-days", ("tls",))
    _check_applies(kind, expect_address is not None, "--address", ("dns",))
    if keyword is not None and not keyword:
        raise UsageError("--keyword must not be empty")
    if not isinstance(max_redirects, int) or max_redirects < 0:
        raise UsageError(f"--max-redirects must be 0 or more (got {max_redirects!r})")
    if not isinstance(warn_days, int) or warn_days < 0:
        raise UsageError(f"--warn-days must be 0 or more (got {warn_days!r})")
    common: dict[str, Any] = {
        "timeout_s": float(timeout_s),
        "verify_tls": bool(verify_tls),
        "warn_days": warn_days,
    }

    if kind == "push":
        if text:
            raise UsageError("push takes no target: the reply gives the URL to push to")
        if port is not None:
            raise UsageError("push takes no port")
        return Target("push", "", **common)

    if kind in _HTTP_ONLY:
        return _parse_http(
            kind,
            text,
            port,
            expect=_parse_expect(expect) if expect is not None else DEFAULT_EXPECT,
            keyword=keyword,
            max_redirects=max_redirects,
            **common,
        )

    if not text:
        raise UsageError(f"{kind} needs a target: {_TARGET_HINT[kind]}")
    text = _strip_scheme(kind, text)
    if kind in ("tcp", "tls"):
        host_text, own_port = _split_host_port(text)
        if own_port is not None and port is not None and own_port != port:
            raise UsageError(f"port given twice: {own_port} in the target and --port {port}")
        port = own_port if own_port is not None else port
        if port is None:
            raise UsageError(f"{kind} needs a port: HOST:PORT or --port N")
        return Target(kind, _check_host(host_text, text), port, **common)

    if port is not None:
        hint = " (use tcp to check a port)" if kind == "icmp" else ""
        raise UsageError(f"{kind} takes no port{hint}")
    host = _check_host(text, text)
    if kind == "dns":
        if _is_ip(host):
            raise UsageError(f"dns needs a name to resolve, not an address (got '{text}')")
        if expect_address is not None:
            expect_address = _check_address(expect_address)
        return Target("dns", host, expect_address=expect_address, **common)
    return Target("icmp", host, **common)


def parse_probe_line(line: str) -> Target:
    """One ``calcifer probe`` line: ``icmp://HOST``, ``tcp://HOST:PORT``, ``http(s)://…``.

    ``tls://HOST:PORT`` and ``dns://NAME`` work too: they are what
    :attr:`Target.display` writes.
    """
    text = line.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise UsageError(
            f"expected icmp://HOST, tcp://HOST:PORT or an http(s):// URL, got '{text}'"
        )
    kind = ALIASES.get(scheme.lower(), scheme.lower())
    if kind not in KINDS or kind == "push":
        raise UsageError(
            f"unknown scheme '{scheme}://'; expected icmp, tcp, http, https, tls or dns"
        )
    if kind in ("tcp", "tls") and _split_host_port(rest)[1] is None:
        raise UsageError(f"{kind} needs a port: {kind}://HOST:PORT")
    return parse_target(kind, text if kind in _HTTP_ONLY else rest)


_TARGET_HINT = {
    "icmp": "a host name or IP address",
    "tcp": "HOST:PORT",
    "tls": "HOST:PORT",
    "dns": "a name to resolve",
}


def _parse_kind(kind: str) -> str:
    name = (kind or "").strip().lower()
    name = ALIASES.get(name, name)
    if name not in KINDS:
        raise UsageError(
            f"unknown type '{kind}'; expected one of icmp (alias network), tcp, http, https, "
            "dns, tls, push"
        )
    return name


def _check_applies(kind: str, given: bool, flag: str, kinds: tuple[str, ...]) -> None:
    if given and kind not in kinds:
        raise UsageError(f"{flag} is for {_join(kinds)} checks, not {kind}")


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _check_port(port: Any, text: str | None = None) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise UsageError(f"'{text if text is not None else port}' is not a port number")
    if not 1 <= port <= 65535:
        raise UsageError(f"port must be between 1 and 65535 (got {port})")
    return port


def _port_from_text(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"'{text}' is not a port number")
    return _check_port(int(text), text)


def _split_host_port(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port``; a bare v6 address has no port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"'{text}' is not a valid address: ']' is missing")
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise UsageError(f"'{text}' is not a valid HOST:PORT")
        return host, _port_from_text(rest[1:])
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port_from_text(port)
    return text, None


def _strip_scheme(kind: str, text: str) -> str:
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    if ALIASES.get(scheme.lower(), scheme.lower()) == kind:
        return rest.rstrip("/")
    raise UsageError(f"{kind} takes {_TARGET_HINT[kind]}, not a URL (got '{text}')")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_host(host: str, typed: str) -> str:
    """A normalised host name or IP literal; UsageError naming what was typed otherwise."""
    candidate = host.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    bad = UsageError(f"'{typed}' is not a valid host name or IP address")
    name = candidate[:-1] if candidate.endswith(".") else candidate
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise bad from None
    labels = ascii_name.split(".")
    if not 0 < len(ascii_name) <= 253 or not all(_LABEL.fullmatch(lb) for lb in labels):
        raise bad
    if labels[-1].isdigit():  # "300.1.1.1" is a mistyped address, not a name
        raise bad
    return candidate.lower()


def _check_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise UsageError(f"--address must be an IP address (got '{text}')") from None


def _parse_http(kind: str, text: str, port: int | None, **options: Any) -> Target:
    if not text:
        raise UsageError(f"{kind} needs a URL, or a host and --port")
    typed = text
    if "://" not in text:
        text = f"{kind}://{text}"
    if (m := _URL_PORT.match(text)) is not None:
        _port_from_text(m.group(1))  # yarl's own message would not say which port
    try:
        url = URL(text)
    except ValueError:
        raise UsageError(f"'{typed}' is not a valid URL") from None
    scheme = url.scheme.lower()
    if scheme not in _HTTP_ONLY:
        raise UsageError(f"{kind} needs an http:// or https:// URL (got '{typed}')")
    if not url.host:
        raise UsageError(f"'{typed}' is not a valid URL: it has no host")
    host = _check_host(url.host, typed)
    if url.explicit_port is not None and port is not None and url.explicit_port != port:
        raise UsageError(f"port given twice: {url.explicit_port} in the URL and --port {port}")
    if port is not None and url.explicit_port is None and port != url.port:
        url = url.with_port(port)
    url = url.with_fragment(None)  # never sent to the server
    # The scheme decides: "http https://nas" is what people type and mean.
    return Target(scheme, host, url.port, str(url), **options)


def _parse_expect(text: str) -> tuple[int, int]:
    value = str(text).strip().lower()
    low = high = None
    if m := re.fullmatch(r"(\d{3})", value):
        low = high = int(m.group(1))
    elif m := re.fullmatch(r"(\d{3})\s*-\s*(\d{3})", value):
        low, high = int(m.group(1)), int(m.group(2))
    elif m := re.fullmatch(r"([1-5])xx", value):
        low, high = int(m.group(1)) * 100, int(m.group(1)) * 100 + 99
    if low is None or high is None or not 100 <= low <= high <= 599:
        raise UsageError(
            f"--expect must be an HTTP status or range from 100 to 599, such as 200, 200-399 "
            f"or 2xx (got '{text}')"
        )
    return low, high


def _format_expect(expect: tuple[int, int]) -> str:
    low, high = expect
    return str(low) if low == high else f"{low}-{high}"


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Result:
    """The outcome of one check, in words a person understands."""

    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    warning: str | None = None


def push_result(last_push_at: datetime | None, interval_s: float, now: datetime) -> Result:
    """Up when a push arrived within ``interval_s`` before ``now``."""
    if last_push_at is None:
        return Result(False, error="no push received yet")
    # SQLite hands back naive datetimes; Calcifer stores UTC.
    if (last_push_at.tzinfo is None) != (now.tzinfo is None):
        last_push_at, now = _as_utc(last_push_at), _as_utc(now)
    silence = (now - last_push_at).total_seconds()
    if silence <= interval_s:
        return Result(True)
    return Result(
        False,
        error=f"no push for {human_duration(silence)} "
        f"(expected every {human_duration(interval_s)})",
    )


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def human_duration(seconds: float) -> str:
    """``45 s``, ``5 min``, ``1 min 30 s``, ``2 h 5 min``, ``3 d 4 h``: two units at most."""
    total = max(0, int(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2]) if parts else "0 s"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def _span(delta: timedelta) -> str:
    """Certificate lifetimes: whole days, or hours on the last day."""
    if delta.days >= 1:
        return _plural(delta.days, "day")
    hours = int(delta.total_seconds() // 3600)
    return _plural(hours, "hour") if hours else "less than an hour"


def judge_certificate(
    der: bytes, target: Target, latency_ms: float | None, now: datetime | None = None
) -> Result:
    """Expiry of a peer certificate: down when expired or not yet valid, a warning when close."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return Result(False, latency_ms, error="the server sent a certificate that cannot be read")
    now = now or datetime.now(UTC)
    if cert.not_valid_before_utc > now:
        since = cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")
        return Result(False, latency_ms, error=f"certificate not valid before {since}")
    left = cert.not_valid_after_utc - now
    if left <= timedelta(0):
        return Result(False, latency_ms, error=f"certificate expired {_span(-left)} ago")
    if left < timedelta(days=target.warn_days):
        return Result(True, latency_ms, warning=f"certificate expires in {_span(left)}")
    return Result(True, latency_ms)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


# --------------------------------------------------------------------------- sockets


def _literal_sockaddr(host: str, port: int | None) -> tuple[int, Any] | None:
    """(family, sockaddr) for an IP address as getaddrinfo gives it; None for a name.

    Hosts are normalised by :func:`parse_target`, so an address is in its canonical
    form here; one with a zone (``fe80::1%eth0``) is left to getaddrinfo.
    """
    try:
        socket.inet_pton(socket.AF_INET, host)
        return socket.AF_INET, (host, port or 0)
    except OSError:
        pass
    if ":" in host and "%" not in host:
        try:
            socket.inet_pton(socket.AF_INET6, host)
            return socket.AF_INET6, (host, port or 0, 0, 0)
        except OSError:
            pass
    return None


_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0)


def _stream_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM | _SOCK_NONBLOCK)
    if not _SOCK_NONBLOCK:
        sock.setblocking(False)
    return sock


async def _sock_connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, sockaddr: Any
) -> None:
    """Connect a non-blocking socket; raises the OSError a blocking connect would.

    A connection the kernel completes at once (a local server: the handshake is done
    before connect() returns) is noticed by a zero-timeout poll, without a trip
    through the event loop; any other waits for the socket to become writable.
    """
    err = sock.connect_ex(sockaddr)
    if err in (errno.EINPROGRESS, errno.EINTR):
        if not _writable_now(sock):
            await _writable(loop, sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def _writable_now(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    waiter = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


# --------------------------------------------------------------------------- time limits


class _Limit:
    """The time limit of one check: see :class:`_Deadlines`."""

    __slots__ = ("cancelling", "state", "task", "when")

    def __init__(self, when: float, task: asyncio.Task[Any]) -> None:
        self.when = when
        self.task = task
        self.cancelling = task.cancelling()
        self.state = _RUNNING

    def expire(self) -> None:
        self.state = _EXPIRED
        self.task.cancel()

    def expired(self) -> bool:
        """For a CancelledError in the check: was it this limit's (then absorbed), as
        ``asyncio.timeout`` tells its own cancellation from anyone else's?"""
        if self.state != _EXPIRED:
            return False
        self.state = _ENDED
        return self.task.uncancel() <= self.cancelling

    def end(self) -> None:
        if self.state == _EXPIRED:  # expired, yet the check ended some other way
            self.task.uncancel()
        self.state = _ENDED


_RUNNING, _EXPIRED, _ENDED = 0, 1, 2
_CLOCK_SLACK = 0.001  # uvloop's clock and timers count whole milliseconds


class _Deadlines:
    """The time limits of every check on one event loop, kept by one timer.

    ``asyncio.timeout`` arms and cancels a timer of the loop per check, which costs
    about as much CPU as a whole ping. Checks start in time order and most share a
    timeout, so per timeout value their deadlines queue up already sorted: one
    timer, set for the earliest deadline of a check still running, cancels the
    checks whose time is up (their task, as ``asyncio.timeout`` does) and drops the
    finished ones from the front of the queues.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queues: dict[float, collections.deque[_Limit]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def start(self, seconds: float) -> _Limit:
        task = asyncio.current_task(self.loop)
        if task is None:
            raise RuntimeError("a check must run inside a task")
        limit = _Limit(self.loop.time() + seconds, task)
        queue = self._queues.get(seconds)
        if queue is None:
            queue = self._queues[seconds] = collections.deque()
        queue.append(limit)
        if limit.when < self._timer_at:
            self._arm(limit.when)
        return limit

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._expire)
        self._timer_at = when

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self.loop.time() + _CLOCK_SLACK
        earliest = math.inf
        for seconds, queue in list(self._queues.items()):
            while queue:
                limit = queue[0]
                if limit.state != _RUNNING:
                    queue.popleft()
                elif limit.when <= now:
                    queue.popleft()
                    limit.expire()
                else:
                    earliest = min(earliest, limit.when)
                    break
            if not queue:
                del self._queues[seconds]
        if earliest < math.inf:
            self._arm(earliest)


# --------------------------------------------------------------------------- ICMP


class IcmpUnavailable(Exception):
    """No ICMP socket can be opened: the message says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _no_icmp_message() -> str:
    try:
        with open(PING_GROUP_RANGE, encoding="ascii") as f:
            current = " ".join(f.read().split())
    except OSError:
        current = "unknown"
    return (
        "ICMP needs root or CAP_NET_RAW (raw socket), or a group allowed by sysctl "
        f"net.ipv4.ping_group_range (now '{current}'); allow all groups with: "
        "sysctl -w net.ipv4.ping_group_range='0 2147483647'"
    )


# Kernel receive timestamps (SO_TIMESTAMPNS): a reply's round trip is measured
# when it arrived, not when a busy loop got round to reading it. Python does not
# export the constant; 35 is its value where Linux uses the generic socket ABI.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_KERNEL_TIMESTAMPS = sys.platform == "linux" and platform.machine() in {
    "x86_64",
    "aarch64",
    "i686",
    "armv7l",
    "riscv64",
}


def _kernel_time(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds / 1e9)
    return None


class _IcmpChannel:
    """One ICMP socket of one address family, shared by every ping in flight.

    icmplib makes the socket and parses error replies; this class adds the asyncio
    multiplexing icmplib's AsyncSocket lacks (it lets one coroutine read the socket
    at a time, so concurrent pings would queue). Echo requests are built from a
    template, byte for byte what icmplib's ``_create_packet`` builds (checked when
    the channel opens), and echo replies are matched without parsing them whole: a
    ping costs a few microseconds of Python, not the tens that icmplib's pure-Python
    checksum and reply objects take.
    """

    # ICMP messages that carry one of our echo requests back inside them.
    _ERRORS: ClassVar[dict[int, frozenset[int]]] = {
        socket.AF_INET: frozenset({3, 4, 5, 11, 12}),
        socket.AF_INET6: frozenset({1, 2, 3, 4}),
    }
    _PAYLOAD = b"calcifer-ping".ljust(56, b".")
    _HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
    _ID_SEQUENCE = struct.Struct("!HH")

    def __init__(self, family: int, privileged: bool) -> None:
        cls: type[ICMPSocket] = ICMPv4Socket if family == socket.AF_INET else ICMPv6Socket
        self._icmp = cls(privileged=privileged)
        self.privileged = privileged
        self.family = family
        sock = self._icmp.sock
        assert sock is not None
        self._sock: socket.socket = sock
        self._sock.setblocking(False)
        with contextlib.suppress(OSError):  # a burst of replies must not overflow the queue
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._timestamps = False
        if _KERNEL_TIMESTAMPS:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self._timestamps = True
        # A raw socket sees every ICMP packet on the host: our identifier picks ours
        # out. A datagram socket's identifier is set by the kernel, which also filters.
        self._ident = unique_identifier() if privileged else 0
        self._echo_reply: int = cls._ICMP_ECHO_REPLY
        self._type_offset = cls._ICMP_HEADER_OFFSET if privileged else 0
        if privileged and family == socket.AF_INET:
            _attach_echo_filter(self._sock, self._ident)
        self._request_type: int = cls._ICMP_ECHO_REQUEST
        self._partial_sum = (self._request_type << 8) + self._ident + _word_sum(self._PAYLOAD)
        samples = (0, 1, 0x7FFF, 0xFFFF)
        if [self._packet(q) for q in samples] != [self._icmplib_packet(q) for q in samples]:
            self._packet = self._icmplib_packet  # type: ignore[method-assign]
        self._sequence = 0
        # sequence -> waiter for (error reply or None, perf_counter at reading, kernel stamp)
        self._waiting: dict[int, asyncio.Future[tuple[ICMPReply | None, float, float | None]]]
        self._waiting = {}
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self._sock.fileno(), self._on_readable)
        self.closed = False

    async def ping(self, sockaddr: tuple[Any, ...]) -> float:
        """Round-trip time in ms; raises icmplib's ICMPError for an ICMP error answer."""
        sequence = self._next_sequence()
        waiter = self.loop.create_future()
        self._waiting[sequence] = waiter
        try:
            packet = self._packet(sequence)
            sent_at, sent_wall = time.perf_counter(), time.time()
            try:
                self._sock.sendto(packet, sockaddr)
            except (BlockingIOError, InterruptedError):
                await self._send(packet, sockaddr)
            error, read_at, arrived_wall = await waiter
        finally:
            del self._waiting[sequence]
        if error is not None:
            error.raise_for_status()
        seconds = read_at - sent_at
        if arrived_wall is not None and 0 <= arrived_wall - sent_wall <= seconds:
            seconds = arrived_wall - sent_wall  # unless the wall clock stepped meanwhile
        return round(seconds * 1000, 3)

    def _packet(self, sequence: int) -> bytes:
        total = self._partial_sum + sequence  # the one's-complement sum, folded below
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        header = self._HEADER.pack(self._request_type, 0, ~total & 0xFFFF, self._ident, sequence)
        return header + self._PAYLOAD

    def _icmplib_packet(self, sequence: int) -> bytes:
        return bytes(self._icmp._create_packet(self._ident, sequence, self._PAYLOAD))

    def _next_sequence(self) -> int:
        for _ in range(0x10000):
            self._sequence = (self._sequence + 1) & 0xFFFF
            if self._sequence not in self._waiting:
                return self._sequence
        raise IcmpUnavailable("more than 65536 pings in flight on one socket")

    async def _send(self, packet: bytes, sockaddr: tuple[Any, ...]) -> None:
        while True:
            # uvloop has no sock_sendto: wait for room in the send buffer by hand.
            writable = self.loop.create_future()
            self.loop.add_writer(self._sock.fileno(), writable.set_result, None)
            try:
                await writable
            finally:
                self.loop.remove_writer(self._sock.fileno())
            try:
                self._sock.sendto(packet, sockaddr)
                return
            except (BlockingIOError, InterruptedError):
                continue

    def _on_readable(self) -> None:
        offset = self._type_offset
        echo_reply = self._echo_reply
        waiting = self._waiting
        while True:
            arrived: float | None = None
            try:
                if self._timestamps:
                    packet, ancdata, _, source = self._sock.recvmsg(4096, _CMSG_SPACE)
                    arrived = _kernel_time(ancdata)
                else:
                    packet, source = self._sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. a queued ICMP error on a datagram socket
                log.debug("ICMP socket: %s", exc)
                return
            received_at = time.perf_counter()
            if len(packet) < offset + 8:
                continue
            kind = packet[offset]
            error: ICMPReply | None = None
            if kind == echo_reply:
                ident, sequence = self._ID_SEQUENCE.unpack_from(packet, offset + 4)
                if self.privileged and ident != self._ident:
                    continue
            elif kind in self._ERRORS[self.family]:  # the request it answers is inside
                error = self._icmp._parse_reply(packet, source[0], received_at)
                if error is None or (self.privileged and error.id != self._ident):
                    continue
                sequence = error.sequence
            else:
                continue  # our own requests seen on loopback, router adverts, …
            waiter = waiting.get(sequence)
            if waiter is not None and not waiter.done():
                waiter.set_result((error, received_at, arrived))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.loop.is_closed():
            self.loop.remove_reader(self._sock.fileno())
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.cancel()
        self._icmp.close()


def _word_sum(data: bytes) -> int:
    """The sum of ``data`` as big-endian 16-bit words (zero-padded), unfolded."""
    if len(data) % 2:
        data += b"\x00"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


_SO_ATTACH_FILTER = 26  # Linux; not exported by the socket module


def _attach_echo_filter(sock: socket.socket, ident: int) -> None:
    """Let the kernel drop, on a raw IPv4 socket, what a ping never wants to read: echo
    requests (each of ours comes back on loopback) and other processes' echo replies.
    The classic BPF program iputils' ping attaches; without it (not Linux) the
    same packets are skipped when read.
    """
    if sys.platform != "linux":
        return
    program = [  # (code, jump if true, jump if false, k), on the packet from the IP header
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf): X = IP header length
        (0x50, 0, 0, 0),  # ldb [x+0]: A = ICMP type
        (0x15, 4, 0, 8),  # jeq #8 (echo request): drop
        (0x15, 0, 2, 0),  # jeq #0 (echo reply): check the identifier; else accept
        (0x48, 0, 0, 4),  # ldh [x+4]: A = identifier
        (0x15, 0, 1, ident),  # jeq #ident: accept; else drop
        (0x06, 0, 0, 0xFFFFFFFF),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    code = b"".join(struct.pack("HBBI", *op) for op in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


# --------------------------------------------------------------------------- the integration


class MonitoringIntegration(Integration):
    """Runs checks. ``ca_file`` adds a CA bundle to the system's trust (a homelab CA);
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` are honoured as by OpenSSL. ``icmp_privileged``
    forces raw (True) or datagram (False) ICMP sockets; None tries raw, then datagram.
    """

    name = "monitoring"
    title = "Monitoring"

    def __init__(
        self,
        *,
        ca_file: str | None = None,
        icmp_privileged: bool | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings
        self._ca_file = ca_file
        self._icmp_privileged = icmp_privileged
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._icmp: dict[int, _IcmpChannel] = {}
        self._requests: dict[str, bytes] = {}  # url -> check_request(url), b"" for none
        self._deadline_book: _Deadlines | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringIntegration:
        ca_file = settings.monitoring.ca_file
        return cls(ca_file=str(ca_file) if ca_file else None, settings=settings)

    # ----- the checks

    async def check(self, target: Target) -> Result:
        """Check one target; a failure is the Result. Push targets: use :func:`push_result`."""
        if target.kind == "push":
            raise ValueError("push endpoints are judged by push_result(), not checked")
        limit = self._deadlines().start(target.timeout_s)
        try:
            return await self._CHECKS[target.kind](self, target)
        except asyncio.CancelledError:
            if limit.expired():
                return Result(False, error=f"timed out after {target.timeout_s:g} s")
            raise
        except TimeoutError:
            return Result(False, error=f"timed out after {target.timeout_s:g} s")
        except socket.gaierror:
            return Result(False, error=f"cannot resolve host '{target.host}'")
        except IcmpUnavailable as exc:
            return Result(False, error=exc.message)
        except ICMPError as exc:
            return Result(False, error=tidy(str(exc)))
        except aiohttp.TooManyRedirects:
            return Result(False, error=f"too many redirects (more than {target.max_redirects})")
        except aiohttp.ClientError as exc:
            return Result(False, error=describe_client_error(exc))
        except ssl.SSLCertVerificationError as exc:
            return Result(False, error="certificate verify failed: " + _verify_message(exc))
        except ssl.SSLError as exc:
            return Result(False, error="TLS handshake failed: " + tidy(exc.reason or str(exc)))
        except OSError as exc:
            return Result(False, error=describe_os_error(exc))
        except Exception:  # a bug in one check must not end a sweep of hundreds
            log.exception("checking %s failed unexpectedly", target.display)
            return Result(False, error="the check itself failed; the log has the details")
        finally:
            limit.end()

    async def sweep(
        self,
        targets: Sequence[Target],
        concurrency: int = 500,
        on_result: Callable[[int, Result], None] | None = None,
    ) -> list[Result]:
        """Check many targets, at most ``concurrency`` at once; results in input order.

        ``on_result(index, result)`` is called as each one finishes (progress, streaming).
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if any(t.kind == "push" for t in targets):
            raise ValueError("push endpoints are judged by push_result(), not swept")
        results: list[Result | None] = [None] * len(targets)
        pending = iter(enumerate(targets))

        async def worker() -> None:
            # One shared iterator: each worker takes the next target.
            for done, (index, target) in enumerate(pending, start=1):
                result = await self.check(target)
                results[index] = result
                if on_result is not None:
                    on_result(index, result)
                if not done % _YIELD_EVERY:
                    # Checks of local servers can finish without waiting (the kernel has
                    # connected before connect() returns): let the rest of the loop run.
                    await asyncio.sleep(0)

        # Workers rather than a task per target: a sweep of 10 000 holds 500 tasks.
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(targets)))))
        return [r for r in results if r is not None]

    async def check_endpoint(self, endpoint: Any) -> tuple[bool, str | None]:
        """The seed's API: (up, error when down / warning when up) for an endpoints row."""
        try:
            target = Target.from_stored(
                endpoint.kind,
                endpoint.target or "",
                endpoint.port,
                endpoint.timeout_s or DEFAULT_TIMEOUT_S,
                endpoint.options or {},
            )
        except UsageError as exc:
            return False, f"invalid endpoint: {exc.message}"
        result = await self.check(target)
        return result.ok, result.error if not result.ok else result.warning

    async def update_endpoint_status(self, endpoint: Any, db: Database) -> bool:
        """The seed's API: check an endpoints row now and record the result as the
        scheduler would (streaks, state, incident, alert); True when it is up now."""
        from calcifer_bot.config import load_settings
        from calcifer_bot.core import utcnow
        from calcifer_bot.engine import Engine, Observation

        now = utcnow()
        if endpoint.kind == "push":
            result = push_result(endpoint.last_push_at, endpoint.interval_s, now)
        else:
            ok, message = await self.check_endpoint(endpoint)
            result = Result(ok, None, None if ok else message, message if ok else None)
        engine = Engine(self._settings or load_settings(environ={}), db, utcnow)
        observation = Observation(endpoint.id, now, result.ok, result.latency_ms,
                                  result.error or result.warning)  # fmt: skip
        await engine.apply([observation])
        row = await db.read(lambda s: s.get(type(endpoint), endpoint.id))
        return row is not None and row.state == "up"

    async def _check_icmp(self, target: Target) -> Result:
        address = _literal_sockaddr(target.host, None)
        family, sockaddr = address or (await self._resolve(target.host, None, socket.SOCK_DGRAM))[0]
        channel = self._icmp_channel(family)
        return Result(True, await channel.ping(sockaddr))

    async def _check_tcp(self, target: Target) -> Result:
        started = time.perf_counter()
        await self._connect(target)
        return Result(True, _ms(started))

    async def _check_tls(self, target: Target) -> Result:
        started = time.perf_counter()
        try:
            der = await self._peer_certificate(target, self._ssl_context(target.verify_tls))
        except ssl.SSLCertVerificationError as exc:
            if exc.verify_code != _X509_V_ERR_CERT_HAS_EXPIRED:
                raise
            # "certificate has expired" says less than "expired 3 days ago": look again.
            der = await self._peer_certificate(target, self._ssl_context(False))
            result = judge_certificate(der, target, _ms(started))
            if result.ok:  # the leaf is fine: an intermediate has expired
                raise
            return result
        return judge_certificate(der, target, _ms(started))

    async def _check_http(self, target: Target) -> Result:
        assert target.url is not None
        if target.kind == "http" and target.keyword is None and target.port is not None:
            request = self._check_request(target.url)
            if request is not None:
                result = await self._check_http_status(target, request)
                if result is not None:
                    return result
        low, high = target.expect
        search = target.keyword is not None
        started = time.perf_counter()
        async with http.session().get(
            target.url,
            ssl=self._ssl_context(target.verify_tls),
            allow_redirects=target.max_redirects > 0,
            # aiohttp gives up on reaching its limit; ours is how many may be followed.
            max_redirects=target.max_redirects + 1,
            auto_decompress=search,  # no body is read unless a keyword is searched
            timeout=aiohttp.ClientTimeout(total=target.timeout_s),
        ) as resp:
            if not low <= resp.status <= high:
                return Result(False, _ms(started), error=f"HTTP {resp.status}")
            if target.keyword is not None:
                body, cut = await http.read_at_most(resp, KEYWORD_BODY_LIMIT)
                text = body.decode(resp.charset or "utf-8", errors="replace")
                if target.keyword not in text:
                    where = " in the first 1 MB" if cut else ""
                    return Result(
                        False, _ms(started), error=f"keyword '{target.keyword}' not found{where}"
                    )
            return Result(True, _ms(started))

    async def _check_http_status(self, target: Target, request: bytes) -> Result | None:
        """Plain HTTP where only the status counts: the session's request on a connection
        of our own, read up to the end of the response head. None when the answer is a
        redirect to follow: the session then follows the chain, from the start.
        """
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        sock = await self._open(target.host, target.port, _HAPPY_EYEBALLS_DELAY)
        try:
            # Breadth first: when the kernel connected at once (a local server), let the
            # other checks of a sweep open their connections (and start their clocks)
            # before this one sends its request.
            await asyncio.sleep(0)
            # A fresh connection's send buffer takes a request head whole: no waiting.
            try:
                sent = sock.send(request)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent < len(request):
                await loop.sock_sendall(sock, request[sent:])
            head = await http.read_head(loop, sock)
        finally:
            sock.close()
        if head.redirect and target.max_redirects > 0:
            return None
        low, high = target.expect
        if not low <= head.status <= high:
            return Result(False, _ms(started), error=f"HTTP {head.status}")
        return Result(True, _ms(started))

    def _check_request(self, url: str) -> bytes | None:
        """The request head for a plain-HTTP status check of ``url`` (None: the session's)."""
        request = self._requests.get(url)
        if request is None:
            try:
                request = http.check_request(url)
            except ValueError:  # user info: the session sends it as Authorization
                request = b""
            if len(self._requests) >= _REQUESTS_KEPT:
                self._requests.clear()
            self._requests[url] = request
        return request or None

    async def _check_dns(self, target: Target) -> Result:
        started = time.perf_counter()
        infos = await self._resolve(target.host, None, socket.SOCK_STREAM)
        latency = _ms(started)
        addresses = list(dict.fromkeys(str(sockaddr[0]).split("%")[0] for _, sockaddr in infos))
        if target.expect_address is not None:
            wanted = ipaddress.ip_address(target.expect_address)
            if wanted not in {ipaddress.ip_address(a) for a in addresses}:
                got = ", ".join(addresses)
                return Result(
                    False,
                    latency,
                    error=f"'{target.host}' resolves to {got}, not {target.expect_address}",
                )
        return Result(True, latency)

    _CHECKS: ClassVar[dict[str, Callable[[MonitoringIntegration, Target], Any]]] = {
        "icmp": _check_icmp,
        "tcp": _check_tcp,
        "tls": _check_tls,
        "http": _check_http,
        "https": _check_http,
        "dns": _check_dns,
    }

    # ----- helpers

    async def _resolve(self, host: str, port: int | None, kind: int) -> list[tuple[int, Any]]:
        """(family, sockaddr) pairs in the resolver's order of preference."""
        literal = _literal_sockaddr(host, port)
        if literal is not None:  # what getaddrinfo answers for an address, without its thread
            return [literal]
        name = host.rstrip(".").lower()
        if name == "invalid" or name.endswith(".invalid"):
            # RFC 6761: never asked of a name server; answering here keeps checks local.
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=kind)
        if not infos:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(family, sockaddr) for family, _, _, _, sockaddr in infos]

    async def _connect(self, target: Target) -> None:
        """Open and close a TCP connection to the first address that accepts one."""
        (await self._open(target.host, target.port)).close()

    async def _open(
        self, host: str, port: int | None, happy_eyeballs_delay: float | None = None
    ) -> socket.socket:
        """A connected non-blocking TCP socket: the first address that accepts one, in the
        resolver's order; with ``happy_eyeballs_delay``, the next address is tried that long
        after the last (RFC 8305, as aiohttp connects) instead of after it failed.
        """
        loop = asyncio.get_running_loop()
        literal = _literal_sockaddr(host, port)
        if literal is not None:  # the usual case, without a coroutine for _resolve
            sock = _stream_socket(literal[0])
            try:
                await _sock_connect(loop, sock, literal[1])
            except BaseException:
                sock.close()
                raise
            return sock
        addresses = await self._resolve(host, port, socket.SOCK_STREAM)
        if happy_eyeballs_delay is not None and len(addresses) > 1:
            infos = [(f, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", a) for f, a in addresses]
            sock = await aiohappyeyeballs.start_connection(
                infos, happy_eyeballs_delay=happy_eyeballs_delay, loop=loop
            )
            sock.setblocking(False)
            return sock
        first: OSError | None = None
        for family, sockaddr in addresses:
            sock = _stream_socket(family)
            try:
                await _sock_connect(loop, sock, sockaddr)
            except OSError as exc:
                sock.close()
                first = first or exc
                continue
            except BaseException:  # cancelled (timed out): the socket is not handed out
                sock.close()
                raise
            return sock
        assert first is not None
        raise first

    async def _peer_certificate(self, target: Target, context: ssl.SSLContext) -> bytes:
        """The DER certificate the server presents (after verification, if the context asks)."""
        first: OSError | None = None
        for family, sockaddr in await self._resolve(target.host, target.port, socket.SOCK_STREAM):
            try:
                _, writer = await asyncio.open_connection(
                    sockaddr[0],
                    target.port,
                    family=family,
                    ssl=context,
                    server_hostname=target.host,
                    ssl_handshake_timeout=target.timeout_s,
                )
            except ssl.SSLError:
                raise  # the server answered: another address will not verify better
            except OSError as exc:
                first = first or exc
                continue
            try:
                ssl_object = writer.get_extra_info("ssl_object")
                der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            finally:
                # No close_notify round trip: it would spend the check's time budget,
                # and the answer is already in.
                writer.transport.abort()
            if not der:
                raise ssl.SSLError("the server sent no certificate")
            return bytes(der)
        assert first is not None
        raise first

    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        if verify not in self._contexts:
            if verify:
                context = ssl.create_default_context(cafile=None)
                if self._ca_file:
                    context.load_verify_locations(cafile=self._ca_file)
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[verify] = context
        return self._contexts[verify]

    def _deadlines(self) -> _Deadlines:
        loop = asyncio.get_running_loop()
        if self._deadline_book is None or self._deadline_book.loop is not loop:
            self._deadline_book = _Deadlines(loop)  # the first, or made in a finished loop
        return self._deadline_book

    def _icmp_channel(self, family: int) -> _IcmpChannel:
        loop = asyncio.get_running_loop()
        channel = self._icmp.get(family)
        if channel is not None and channel.loop is loop and not channel.closed:
            return channel
        if channel is not None:  # made in a loop that has finished (tests, a second run)
            channel.close()
        modes = [True, False] if self._icmp_privileged is None else [self._icmp_privileged]
        for privileged in modes:
            try:
                channel = _IcmpChannel(family, privileged)
            except SocketPermissionError:
                continue
            except ICMPSocketError as exc:
                raise IcmpUnavailable(f"cannot open an ICMP socket: {tidy(str(exc))}") from None
            self._icmp[family] = channel
            return channel
        raise IcmpUnavailable(_no_icmp_message())

    # ----- the Integration contract

    async def check_connectivity(self) -> Connectivity:
        try:
            channel = self._icmp_channel(socket.AF_INET)
        except IcmpUnavailable as exc:
            return Connectivity(Reachability.CANNOT_CONNECT, exc.message)
        mode = "privileged raw socket" if channel.privileged else "unprivileged datagram socket"
        return Connectivity(Reachability.OK, f"ICMP: {mode}")

    async def close(self) -> None:
        for channel in self._icmp.values():
            channel.close()
        self._icmp.clear()


def __getattr__(name: str) -> Any:
    """``from integrations import monitoring`` yields this module, not the singleton, once
    the module is imported (the import system sets the package attribute): the
    singleton's public attributes are forwarded so ``monitoring.check(t)`` works either way.
    """
    if name.startswith("_") or not hasattr(MonitoringIntegration, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import integrations

    return getattr(integrations.get("monitoring"), name)


def _verify_message(exc: ssl.SSLCertVerificationError) -> str:
    return tidy(exc.verify_message or exc.reason or str(exc))


# --------------------------------------------------------------------------- documentation


@dataclass(frozen=True, slots=True)
class _Doc:
    what: str
    steps: list[str] = field(default_factory=list)


def generate_endpoint_documentation(endpoint: Any) -> str:
    """Markdown for ``doc NAME``: what is checked, when it alerts, how to troubleshoot."""

    def get(attr: str, default: Any = None) -> Any:
        return getattr(endpoint, attr, default)

    name = get("name", "endpoint")
    kind = ALIASES.get(str(get("kind", "")), str(get("kind", "")))
    interval = float(get("interval_s") or 60.0)
    timeout = float(get("timeout_s") or DEFAULT_TIMEOUT_S)
    failures = int(get("failures") or 3)
    successes = int(get("successes") or 2)
    try:
        target: Target | None = Target.from_stored(
            kind, get("target") or "", get("port"), timeout, get("options") or {}
        )
    except UsageError:
        target = None
    shown = target.display if target else f"{kind} {get('target') or ''}".strip()
    doc = _kind_doc(target, kind)

    lines = [f"# {name}", "", f"`{shown}` — {doc.what}", ""]
    lines += ["| | |", "|---|---|", f"| Type | {kind} |", f"| Target | `{shown}` |"]
    if kind == "push":
        lines.append(f"| Expected | a push at least every {human_duration(interval)} |")
    else:
        lines.append(f"| Checked every | {human_duration(interval)} |")
        lines.append(f"| Timeout | {timeout:g} s |")
    for label, attr in (("Service", "service"), ("Group", "group_name"), ("Channel", "channel")):
        if get(attr):
            lines.append(f"| {label} | {get(attr)} |")
    if get("tags"):
        lines.append(f"| Tags | {', '.join(f'`{t}`' for t in get('tags'))} |")
    if get("severity"):
        lines.append(f"| Severity | {get('severity')} |")

    lines += ["", "## When it alerts", ""]
    checks = _plural(failures, "consecutive failed check")
    if kind == "push":
        lines.append(
            f"- **Down** after {checks}; a check fails when no push arrived in the last "
            f"{human_duration(interval)}."
        )
    else:
        lines.append(
            f"- **Down** after {checks}; after a failure it is re-checked at a short retry "
            "interval, not a whole interval later."
        )
    lines.append(f"- **Up** again after {_plural(successes, 'consecutive successful check')}.")
    if target is not None and target.kind == "tls":
        lines.append(
            f"- A certificate that expires in fewer than {target.warn_days} days is a warning; "
            "an expired one is down."
        )
    channel = get("channel")
    where = f"`{channel}`" if channel else "the default alert channel (`CALCIFER_ALERT_CHANNEL`)"
    lines.append(f"- Alerts go to {where}: one per outage; reminders while down, until `ack`.")
    lines.append("- `mute` or a `maintenance` window silences alerts; results are still kept.")

    lines += ["", "## Troubleshooting", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(doc.steps, start=1)]
    lines.append(
        f"{len(doc.steps) + 1}. Run `check {name}` to check now, `uptime {name}` and "
        f"`incidents` for the history."
    )
    return "\n".join(lines) + "\n"


def _kind_doc(target: Target | None, kind: str) -> _Doc:
    if target is None:
        return _Doc(
            "the stored target is not valid any more.",
            ["Remove the endpoint and add it again with `endpoint add`."],
        )
    host = target.host
    port = target.port
    if kind == "icmp":
        return _Doc(
            "an ICMP echo request (ping) must be answered within the timeout.",
            [
                f"`ping -c 3 {host}` from the Calcifer host: no answer at all, or an error?",
                f"`ip route get {host}` — is there a route, through the expected interface?",
                "Is the host powered on and on the network (switch port, Wi-Fi, VM running)?",
                "Does a firewall drop ICMP (the host's own, the router's)?",
            ],
        )
    if kind == "tcp":
        return _Doc(
            f"a TCP connection to port {port} must be accepted within the timeout "
            "(then closed; nothing is sent).",
            [
                f"On {host}: is the service listening? `ss -ltnp | grep ':{port}'`",
                "Is the service running? `systemctl status SERVICE` / `docker ps`",
                f"From the Calcifer host: `nc -vz {host} {port}` — refused (nothing listens) "
                "or timed out (a firewall drops it)?",
                f"Firewall: `nft list ruleset` / `ufw status` on {host}, and the router's rules.",
            ],
        )
    if kind in _HTTP_ONLY:
        low, high = target.expect
        parts = [f"an HTTP GET of {target.url} must answer with a status from {low} to {high}"]
        if target.keyword:
            parts.append(f"and the body must contain `{target.keyword}`")
        if target.max_redirects:
            parts.append(f"(following up to {target.max_redirects} redirects)")
        if kind == "https":
            parts.append(
                "over a verified TLS connection"
                if target.verify_tls
                else "(certificate not verified: --insecure)"
            )
        insecure = "-k " if not target.verify_tls else ""
        return _Doc(
            " ".join(parts) + ".",
            [
                f"`curl -v {insecure}'{target.url}'` from the Calcifer host: status, headers, "
                "time taken, TLS errors.",
                "A 5xx status: the application's own log (`journalctl -u SERVICE`, "
                "`docker logs CONTAINER`); behind a reverse proxy, its log too.",
                f"Refused or timed out: is the server listening? `ss -ltnp | grep ':{port}'` on "
                f"{host}; the firewall.",
                "A certificate error: `openssl s_client -connect "
                f"{_host_port(host, port)} -servername {host}` shows the chain. To be warned "
                f"before it expires, add a tls endpoint for {_host_port(host, port)}.",
            ],
        )
    if kind == "tls":
        check = "verified and " if target.verify_tls else ""
        return _Doc(
            f"the TLS certificate on port {port} must be {check}not expired; under "
            f"{target.warn_days} days left is a warning.",
            [
                f"`openssl s_client -connect {_host_port(host, port)} -servername {host} "
                "</dev/null | openssl x509 -noout -dates -subject -issuer`",
                "Expired or expiring: has the renewal run? `certbot certificates`, "
                "the ACME client's log, or the reverse proxy's (Caddy, Traefik) log.",
                "Renewed but still old: reload the service that serves it.",
                "Verify failed: a missing intermediate certificate, a wrong name, or a "
                "private CA the Calcifer host does not trust.",
            ],
        )
    if kind == "dns":
        what = f"the name `{host}` must resolve"
        if target.expect_address:
            what += f" and the answer must contain {target.expect_address}"
        return _Doc(
            what + " (through the Calcifer host's resolver).",
            [
                f"`dig {host}` (and `dig @SERVER {host}` for each of your DNS servers).",
                "`resolvectl status` or `/etc/resolv.conf`: which server does the host ask?",
                "Is the DNS server (Pi-hole, AdGuard, Unbound, the router) running?",
                "A wrong address: the record in the zone or the DHCP lease behind it.",
            ],
        )
    return _Doc(
        "the application must call its push URL (GET or POST) at least once per interval.",
        [
            "Is the job that pushes still running (cron, systemd timer, the container)?",
            "Its log: did it fail before reaching the push?",
            "From the pushing host, `curl -v PUSH_URL`: does it reach Calcifer?",
        ],
    )


def _host_port(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
