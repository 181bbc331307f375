"""A local HTTP server for webhook tests: records every request, answers as scripted.

``async with running_webhook_server() as server:`` listens on 127.0.0.1 and a
port the kernel picks. Each path answers with what :meth:`WebhookServer.script`
queued for it, in order, then with its default: what :meth:`WebhookServer.kind`
made it (a Slack incoming webhook, a Discord webhook, a JSON receiver), else 404.

Protocol facts it copies:

- Slack answers ``200 ok`` (text/html), and ``400 no_text`` to a message with
  nothing in it (``{}``) without posting it, ``400 invalid_payload`` to a body
  that is not JSON.
- Discord answers a POST with the message object when ``?wait=true`` and 204
  otherwise; ``PATCH …/messages/{id}`` with the edited message, or 404 code 10008
  for an unknown id; GET with the webhook object. A multipart body carries the
  JSON in ``payload_json`` and the files as ``files[n]``, each listed in
  ``attachments`` by its ``id`` (400 code 50035 otherwise). JSON answers have
  ``Content-Type: application/json`` exactly, as discord.py requires.

An :class:`Answer` with a ``delay`` longer than the client's timeout is a
server that never answers; closing the server ends such handlers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.fakediscord import json_response  # Content-Type exactly application/json
from tests.localhttp import serve

Kind = Literal["slack", "discord", "json"]

WEBHOOK_ID = "223344556677889900"
CHANNEL_ID = "112233445566778899"
GUILD_ID = "998877665544332211"
WEBHOOK_NAME = "Calcifer alerts"
_FIRST_MESSAGE_ID = 1_300_000_000_000_000_001


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted answer: ``json`` (sent as application/json) or ``body``, after ``delay`` s."""

    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    headers: Mapping[str, str] | None = None
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]  # case-insensitive
    body: bytes

    def json(self) -> Any:
        """The JSON body, or a multipart body's ``payload_json``."""
        if self.content_type == "multipart/form-data":
            return self.part("payload_json").json()
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").partition(";")[0].strip().lower()

    @property
    def parts(self) -> list[Part]:
        """The parts of a multipart/form-data body, in order (empty for any other body)."""
        return _multipart(self.headers.get("Content-Type", ""), self.body)

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"no part {name!r} in {[p.name for p in self.parts]}")


def discord_error(code: int, message: str, status: int) -> Answer:
    """A Discord error body: ``discord_error(10015, "Unknown Webhook", 404)``."""
    return Answer(status, json={"message": message, "code": code})


@dataclass
class WebhookServer:
    """Records requests and answers them; see the module docstring."""

    url: str = ""  # http://127.0.0.1:PORT, set once listening
    received: list[Received] = field(default_factory=list)
    # Discord messages posted with ?wait=true, by id: what PATCH edits.
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    _scripts: defaultdict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    _kinds: dict[str, Kind] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(_FIRST_MESSAGE_ID))
    _runner: web.AppRunner | None = None

    # -- set-up ---------------------------------------------------------------------

    def url_for(self, path: str) -> str:
        """The absolute URL of ``path`` ("/hooks/T1/B1/x"); a query may follow the path."""
        if not path.startswith("/"):
            raise ValueError(f"paths start with '/': {path!r}")
        return self.url + path

    def kind(self, path: str, kind: Kind) -> str:
        """Make ``path`` answer as a Slack or Discord webhook or a JSON receiver; its URL."""
        self._kinds[path] = kind
        return self.url_for(path)

    def script(self, path: str, *answers: Answer) -> None:
        """Queue answers for ``path``; each request takes the next, then the default."""
        self._scripts[path].extend(answers)

    # -- what arrived ---------------------------------------------------------------

    def on(self, path: str) -> list[Received]:
        """The requests for exactly ``path`` (without query), in order."""
        return [r for r in self.received if r.path == path]

    async def wait_for(
        self,
        n: int,
        path: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - callers want one number, not a context
    ) -> list[Received]:
        """Wait until ``n`` requests (for ``path``, if given) arrived; those requests."""

        def arrived() -> list[Received]:
            return self.received if path is None else self.on(path)

        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(lambda: len(arrived()) >= n), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"{len(arrived())} of {n} requests arrived within {timeout:g} s"
                ) from None
        return list(arrived())

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=26 * 1024 * 1024)  # Discord's upload limit
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Handlers still waiting out a delay end when _closing is set; the short
        # timeout only covers a client that keeps its connection open.
        self._runner, self.url = await serve(app, access_log=None, shutdown_timeout=1.0)

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- answering ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=await request.read(),
        )
        self.received.append(received)
        async with self._arrived:
            self._arrived.notify_all()
        script = self._scripts.get(received.path)
        if script:
            answer = script.popleft()
            if answer.delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), answer.delay)
            return _respond(answer)
        return self._default(received)

    def _default(self, r: Received) -> web.StreamResponse:
        kind = self._kinds.get(r.path)
        if kind == "slack":
            return _slack(r)
        if kind == "json":
            return json_response({})
        if kind == "discord":
            return self._discord_hook(r)
        base, sep, message_id = r.path.rpartition("/messages/")
        if sep and self._kinds.get(base) == "discord":
            return self._discord_message(r, message_id)
        return web.Response(status=404, text="404: Not Found")

    def _discord_hook(self, r: Received) -> web.StreamResponse:
        if r.method == "GET":
            return json_response(
                {
                    "id": WEBHOOK_ID,
                    "type": 1,
                    "name": WEBHOOK_NAME,
                    "avatar": None,
                    "channel_id": CHANNEL_ID,
                    "guild_id": GUILD_ID,
                    "application_id": None,
                    "token": r.path.rsplit("/", 1)[-1],
                }
            )
        if r.method != "POST":
            return json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
        payload, problem = _discord_payload(r)
        if problem is not None:
            return problem
        if r.query.get("wait", "").lower() != "true":
            return web.Response(status=204)
        message_id = str(next(self._ids))
        message = {
            "id": message_id,
            "type": 0,
            "content": payload.get("content", ""),
            "embeds": payload.get("embeds", []),
            "attachments": _attachments(r, message_id),
            "channel_id": CHANNEL_ID,
            "webhook_id": WEBHOOK_ID,
            "author": {
                "id": WEBHOOK_ID,
                "username": payload.get("username", WEBHOOK_NAME),
                "bot": True,
            },
        }
        self.messages[message_id] = message
        return json_response(message)

    def _discord_message(self, r: Received, message_id: str) -> web.StreamResponse:
        message = self.messages.get(message_id)
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, 404)
        if r.method == "GET":
            return json_response(message)
        if r.method != "PATCH":
            return json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
        payload, problem = _discord_payload(r)
        if problem is not None:
            return problem
        for key in ("content", "embeds"):
            if key in payload:
                message[key] = payload[key]
        if "attachments" in payload:
            message["attachments"] = _attachments(r, message_id)
        return json_response(message)


@contextlib.asynccontextmanager
async def running_webhook_server() -> AsyncIterator[WebhookServer]:
    server = WebhookServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


# -- helpers ------------------------------------------------------------------------


def _respond(answer: Answer) -> web.Response:
    if answer.json is not None:
        return json_response(answer.json, answer.status, answer.headers)
    body = answer.body.encode() if isinstance(answer.body, str) else answer.body
    response = web.Response(status=answer.status, body=body, headers=answer.headers)
    if body is not None and "Content-Type" not in response.headers:
        response.headers["Content-Type"] = "text/plain"
    return response


def _slack(r: Received) -> web.Response:
    if r.method != "POST":
        return web.Response(status=405, text="invalid_method")
    try:
        message = json.loads(r.body)
    except ValueError:
        return web.Response(status=400, text="invalid_payload", content_type="text/html")
    if not isinstance(message, dict):
        return web.Response(status=400, text="invalid_payload", content_type="text/html")
    if not (message.get("text") or message.get("blocks") or message.get("attachments")):
        return web.Response(status=400, text="no_text", content_type="text/html")
    return web.Response(text="ok", content_type="text/html")


def _discord_payload(r: Received) -> tuple[dict[str, Any], web.Response | None]:
    """The JSON a Discord webhook request carries, or the 400 Discord would answer."""

    def invalid(why: str) -> tuple[dict[str, Any], web.Response]:
        body = {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {"_errors": [{"code": "INVALID", "message": why}]},
        }
        return {}, json_response(body, 400)

    try:
        payload = r.json()
    except (ValueError, KeyError):
        return invalid("the body is not JSON, nor multipart with payload_json")
    if not isinstance(payload, dict):
        return invalid("the payload is not an object")
    files = [p for p in r.parts if p.name.startswith("files[")]
    listed = {str(a.get("id")) for a in payload.get("attachments", []) if isinstance(a, dict)}
    for part in files:
        if part.name[len("files[") : -1] not in listed:
            return invalid(f"{part.name} has no entry in attachments")
    return payload, None


def _attachments(r: Received, message_id: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{message_id}{i}",
            "filename": part.filename,
            "size": len(part.data),
            "content_type": part.content_type,
        }
        for i, part in enumerate(p for p in r.parts if p.name.startswith("files["))
    ]


def _multipart(content_type: str, body: bytes) -> list[Part]:
    """Parse multipart/form-data by hand: the body is kept whole, bytes as sent."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return []
    boundary = _params(params).get("boundary")
    if not boundary:
        return []
    parts: list[Part] = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        disposition = _params(headers.get("Content-Disposition", "").partition(";")[2])
        parts.append(
            Part(
                name=disposition.get("name", ""),
                filename=disposition.get("filename"),
                content_type=headers.get("Content-Type"),
                data=data.removesuffix(b"\r\n"),
            )
        )
    return parts


def _params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.strip().partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return params


__all__ = [
    "CHANNEL_ID",
    "WEBHOOK_ID",
    "WEBHOOK_NAME",
    "Answer",
    "Kind",
    "Part",
    "Received",
    "WebhookServer",
    "discord_error",
    "json_response",
    "running_webhook_server",
]
