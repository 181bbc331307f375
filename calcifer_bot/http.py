"""The process's one outbound HTTP client: a shared aiohttp session and a chokepoint.

Every integration that talks HTTP (checks, notifications, Grafana) goes through
:func:`session` or :func:`request`, so there is one connection limit, one
resolver cache and one place where aiohttp's exceptions become
:class:`~calcifer_bot.errors.IntegrationError`.

Connections are never reused (``force_close``): an endpoint check must open a
connection of its own to prove the endpoint reachable, and a pooled keep-alive
connection opened by a webhook call to the same host would quietly answer for
it. The handshake this costs the few API calls Calcifer makes is negligible.

The one exception to "through the session": a plain-HTTP endpoint check that
needs only the status sends, on a connection it opens itself, the request the
session would send (:func:`check_request`) and reads only the response head
(:func:`read_head`); a sweep makes thousands of them, and the session's
per-request machinery costs several times the request itself.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from calcifer_bot import __version__
from calcifer_bot.errors import IntegrationError

USER_AGENT = f"Calcifer/{__version__}"
DEFAULT_TIMEOUT_S = 30.0
MAX_BODY = 20 * 1024 * 1024  # a Grafana PNG is well under this; a runaway answer is not

_session: aiohttp.ClientSession | None = None
_loop: asyncio.AbstractEventLoop | None = None


def session() -> aiohttp.ClientSession:
    """The shared session, created on first use inside the running loop."""
    global _session, _loop
    loop = asyncio.get_running_loop()
    if _session is None or _session.closed or _loop is not loop:
        # A session belongs to the loop it was made in; one left over from a
        # finished loop (tests, a second asyncio.run) cannot be closed any more.
        _abandon()
        connector = aiohttp.TCPConnector(
            force_close=True,  # see the module docstring: every request connects afresh
            limit=0,  # callers bound their own concurrency (a sweep runs hundreds at once)
            ttl_dns_cache=10,
        )
        _session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # checks and webhooks carry no state
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT_S),
            raise_for_status=False,
        )
        _loop = loop
    return _session


def _abandon() -> None:
    """Let go of a session whose loop has ended without :func:`close` being awaited.

    With ``force_close`` its connector keeps no idle connection, so nothing is
    left open: detaching only spares the "Unclosed client session" warning.
    """
    global _session, _loop
    if _session is not None and not _session.closed:
        _session.detach()
    _session = _loop = None


atexit.register(_abandon)


async def close() -> None:
    """Close the shared session (at shutdown); the next :func:`session` makes a new one."""
    global _session, _loop
    current, _session = _session, None
    owner, _loop = _loop, None
    if current is None or current.closed:
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if owner is running:
        await current.close()
    else:
        current.detach()  # its loop is gone: nothing can be awaited there


@dataclass(frozen=True, slots=True)
class Response:
    """A finished answer, body read: nothing for the caller to release."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding, errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise IntegrationError(
                f"{_host(self.url)} answered with something that is not JSON", permanent=False
            ) from exc


class HTTPStatusError(IntegrationError):
    """The server answered with 4xx or 5xx; ``retry_after`` from a 429/503 when given.

    ``body`` is the answer's body, for callers that read a service's own error
    (Discord's JSON ``code`` and ``retry_after``); it is never part of the message
    beyond its first line.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        permanent: bool,
        retry_after: float | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message, permanent=permanent, retry_after=retry_after)
        self.status = status
        self.body = body


async def request(
    method: str,
    url: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_body: int = MAX_BODY,
    **kw: Any,
) -> Response:
    """One HTTP request through the shared session; raises ``IntegrationError`` on failure.

    ``kw`` goes to :meth:`aiohttp.ClientSession.request` (``json=``, ``data=``,
    ``headers=``, ``params=``…). Messages name the host, never the whole URL:
    webhook URLs carry their token in the path.
    """
    host = _host(url)
    try:
        async with session().request(
            method, url, timeout=aiohttp.ClientTimeout(total=timeout_s), **kw
        ) as resp:
            body, cut = await read_at_most(resp, max_body)
            if cut:
                raise IntegrationError(
                    f"{host} answered with more than {max_body // 1024 // 1024} MB", permanent=True
                )
            if resp.status >= 400:
                raise _status_error(host, resp.status, resp.headers, body)
            return Response(resp.status, resp.headers, body, str(resp.url))
    except IntegrationError:
        raise
    except TimeoutError:
        raise IntegrationError(f"{host} did not answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise IntegrationError(f"{host}: {describe_client_error(exc)}") from None


async def read_at_most(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the body, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await resp.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:limit], len(body) > limit


def _status_error(
    host: str, status: int, headers: Mapping[str, str], body: bytes
) -> HTTPStatusError:
    # 408 and 429 are the client-side codes that say "later", not "never".
    permanent = 400 <= status < 500 and status not in (408, 429)
    detail = body[:200].decode("utf-8", errors="replace").strip().splitlines()
    message = f"{host} answered HTTP {status}" + (f": {detail[0]}" if detail else "")
    return HTTPStatusError(
        message,
        status=status,
        permanent=permanent,
        retry_after=_retry_after(headers.get("Retry-After")),
        body=body,
    )


def _retry_after(value: str | None) -> float | None:
    # The HTTP-date form is rare from APIs; seconds is what Slack and Discord send.
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _host(url: str) -> str:
    try:
        return URL(url).host or "the server"
    except ValueError:
        return "the server"


# --------------------------------------------------------------------------- check requests
#
# An endpoint check that needs only the status of a plain-HTTP answer sends the
# request the shared session would send, on a connection of its own, and reads
# no further than the end of the response head: none of a session request's
# machinery (request and response objects, body streams, cookie and redirect
# handling) is needed to learn a status, and a sweep makes thousands of them.


def check_request(url: str) -> bytes:
    """The head of the GET the shared session sends for ``url`` on a fresh connection.

    Header for header what :func:`session` sends (aiohttp's default headers, the
    session's User-Agent, ``Connection: close`` from ``force_close``), the target
    and Host as yarl makes them. ``url`` must be absolute and carry no user info
    (the session would send an Authorization header for it): ValueError otherwise.
    """
    plain = _PLAIN_URL.fullmatch(url)
    if (
        plain is not None and int(plain.group("port") or 80) <= 65535
    ):  # nothing yarl would change: spare parsing it (a sweep has 1000s)
        host, port, target = plain.group("host", "port", "target")
        if port is not None and port != "80":
            host = f"{host}:{port}"
        target = target if target.startswith("/") else "/" + target
    else:
        parsed = URL(url)
        if parsed.host_port_subcomponent is None or parsed.raw_user or parsed.raw_password:
            raise ValueError("an absolute URL without user info is needed")
        host, target = parsed.host_port_subcomponent, parsed.raw_path_qs or "/"
    # yarl percent-encodes the target and IDNA-encodes the host: no line break gets in.
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{_FIXED_HEADERS}".encode("ascii")


# URLs in the form yarl writes them that it leaves as they are: a lower-case ASCII
# host, no user info, no percent escapes, no "." or ".." path segment.
_PLAIN_URL = re.compile(
    r"http://(?P<host>(?:[a-z0-9-]+\.)*[a-z0-9-]+)(?::(?P<port>[1-9][0-9]{0,4}))?"
    r"(?P<target>(?:/(?!\.\.?(?:[/?]|$))[-A-Za-z0-9_.~]*)*(?:\?[-A-Za-z0-9_.~=&]+)?)"
)


_FIXED_HEADERS = (
    "".join(
        f"{name}: {value}\r\n"
        for name, value in [
            ("User-Agent", USER_AGENT),
            *aiohttp.ClientRequest.DEFAULT_HEADERS.items(),
            ("Connection", "close"),
        ]
    )
    + "\r\n"
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})  # those aiohttp follows
MAX_LINE = 8190  # aiohttp's limit for the status line and each header line
MAX_HEAD = 64 * 1024
_STATUS_LINE = re.compile(rb"HTTP/\d\.\d (\d{3})(?:[ \t][^\r\n]*)?\r?")
_DIGITS = re.compile(rb"[0-9]+")


class InvalidResponse(aiohttp.ClientError):
    """The server answered with something that is not an HTTP/1.x response head."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResponseHead(NamedTuple):
    """The final (non-1xx) response head: its status, and whether it names a redirect."""

    status: int
    location: bool

    @property
    def redirect(self) -> bool:
        """A redirect the session would follow (when it follows redirects)."""
        return self.location and self.status in REDIRECT_STATUSES


async def read_head(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> ResponseHead:
    """Read a response head from a connected non-blocking socket; the body is left unread.

    Informational answers (1xx other than 101) are skipped, as aiohttp does. Raises
    :class:`InvalidResponse`, ``aiohttp.ServerDisconnectedError`` when the server
    closes first, or the OSError of the socket.
    """
    buffer = b""
    while True:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            raise aiohttp.ServerDisconnectedError()
        buffer += chunk
        while True:
            end = _end_of_head(buffer)
            if end is None:
                break
            head = parse_head(buffer[: end[0]])
            if not (100 <= head.status <= 199 and head.status != 101):
                return head
            buffer = buffer[end[1] :]
        if len(buffer) > MAX_HEAD:
            raise InvalidResponse(f"response head longer than {MAX_HEAD // 1024} KB")


def _end_of_head(buffer: bytes) -> tuple[int, int] | None:
    """(end of the head, start of what follows) once the blank line has arrived."""
    crlf = buffer.find(b"\n\r\n")
    lf = buffer.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return None


def parse_head(head: bytes) -> ResponseHead:
    """Parse a response head (status line and header lines, without the blank line).

    As strict as aiohttp's parser where a check's verdict depends on it: the status
    line, header names (a token, then a colon), Content-Length; obsolete folded
    lines and bare LF line ends are accepted, as there.
    """
    if len(head) > MAX_LINE and any(len(line) > MAX_LINE for line in head.split(b"\n")):
        raise InvalidResponse(f"a line longer than {MAX_LINE} bytes")
    newline = head.find(b"\n")
    status_line = _STATUS_LINE.fullmatch(head if newline < 0 else head[:newline])
    if status_line is None:
        raise InvalidResponse("bad status line")
    status = int(status_line.group(1))
    if newline < 0:
        return ResponseHead(status, False)
    fields = head[newline:] + b"\n"  # every line between "\n" and "\n"
    if _FIELDS.fullmatch(fields) is None:
        raise InvalidResponse("invalid header line")
    lower = fields.lower()
    location = _has_value(lower, b"\nlocation:") or _has_value(lower, b"\nuri:")
    lengths = lower.count(b"\ncontent-length:")
    if lengths > 1:
        raise InvalidResponse("duplicate Content-Length")
    if lengths:
        start = lower.index(b"\ncontent-length:") + 16
        value = lower[start : lower.index(b"\n", start)].strip(b" \t\r")
        if _DIGITS.fullmatch(value) is None:
            raise InvalidResponse("invalid Content-Length")
    return ResponseHead(status, location)


_FIELDS = re.compile(rb"\n(?:(?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:|[ \t])[^\n]*\n)*")


def _has_value(lower: bytes, name: bytes) -> bool:
    """Whether the first header ``name`` (b"\\nname:") has a value that is not blank
    (aiohttp follows the first Location, or failing that the first URI)."""
    start = lower.find(name)
    if start < 0:
        return False
    start += len(name)
    return bool(lower[start : lower.index(b"\n", start)].strip(b" \t\r"))


def describe_client_error(exc: aiohttp.ClientError) -> str:
    """Words a person understands for an aiohttp failure (no URL, no class names)."""
    if isinstance(exc, InvalidResponse):
        return f"invalid HTTP response: {exc.message}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "certificate verify failed: " + tidy(
            getattr(exc.certificate_error, "verify_message", None) or str(exc.certificate_error)
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return "TLS handshake failed: " + tidy(getattr(exc.os_error, "reason", None) or str(exc))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host '{exc.host}'"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return describe_os_error(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut off"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL {exc.url}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"invalid HTTP response: {tidy(exc.message)}" if exc.message else "invalid response"
    if isinstance(exc, aiohttp.ClientOSError):
        return describe_os_error(exc)
    return tidy(str(exc)) or type(exc).__name__


_ERRNO_WORDS = {
    "ECONNREFUSED": "connection refused",
    "ECONNRESET": "connection reset",
    "ECONNABORTED": "connection aborted",
    "EHOSTUNREACH": "host unreachable",
    "ENETUNREACH": "network unreachable",
    "EHOSTDOWN": "host is down",
    "ENETDOWN": "network is down",
    "ETIMEDOUT": "connection timed out",
    "EADDRNOTAVAIL": "address not available",
    "EPIPE": "connection closed",
    "EMFILE": "too many open files (raise the file limit or lower the concurrency)",
}


def describe_os_error(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or -1)
    if name in _ERRNO_WORDS:
        return _ERRNO_WORDS[name]
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return tidy(exc.strerror or str(exc)) or type(exc).__name__


def tidy(text: str) -> str:
    """A library's sentence as part of ours: lower-case start, no trailing full stop."""
    text = text.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text
