"""The process's one outbound HTTP client: a shared aiohttp session and a chokepoint.

Every integration that talks HTTP (checks, notifications, Grafana) goes through
:func:`session` or :func:`request`, so there is one connection limit, one
resolver cache and one place where aiohttp's exceptions become
:class:`~calcifer_bot.errors.IntegrationError`.

Connections are never reused (``force_close``): an endpoint check must open a
connection of its own to prove the endpoint reachable, and a pooled keep-alive
connection opened by a webhook call to the same host would quietly answer for
it. The handshake this costs the few API calls Calcifer makes is negligible.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    """The server answered with 4xx or 5xx; ``retry_after_s`` from a 429/503 when given."""

    def __init__(
        self, message: str, *, status: int, permanent: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.status = status
        self.retry_after_s = retry_after_s


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
        retry_after_s=_retry_after(headers.get("Retry-After")),
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


def describe_client_error(exc: aiohttp.ClientError) -> str:
    """Words a person understands for an aiohttp failure (no URL, no class names)."""
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
