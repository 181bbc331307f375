"""A local Slack for wire tests: the Web API, upload URLs, response_url and Socket Mode.

The real slack_sdk / slack_bolt clients talk to it unmodified; only their URLs change
(``AsyncWebClient(base_url=fake.api_url)``; ``apps.connections.open`` hands out the
fake's own websocket URL). Everything listens on 127.0.0.1 and a port the kernel picks.

Protocol facts it relies on (slack_sdk 3.48, slack_bolt 1.30):

- ``chat.postMessage``, ``chat.update`` and ``chat.postEphemeral`` send JSON bodies;
  most other methods send their arguments as URL query parameters, even on POST
  (``files.completeUploadExternal`` puts its ``files`` JSON string there).
  A ``token`` argument is moved into ``Authorization: Bearer``.
- ``files_upload_v2`` = ``files.getUploadURLExternal`` → POST of the raw bytes to the
  upload URL (no token, ``application/octet-stream``; the answer must be ``text/plain``
  or slack_sdk tries to parse it as JSON) → ``files.completeUploadExternal``. It does
  not call ``files.info``.
- The Socket Mode client ignores ``hello``, pings with ``sdk-ping-pong:<time>`` payloads,
  answers a ``disconnect`` frame or a close frame by asking ``apps.connections.open``
  for a new URL, and acks with ``{"envelope_id": ..., "payload"?: ...}``.
- slack_sdk reads ``HTTPS_PROXY``/``HTTP_PROXY`` (ignoring ``NO_PROXY``) for every client,
  so tests must clear :data:`PROXY_VARIABLES` or traffic meant for 127.0.0.1 leaves
  through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSCloseCode, WSMsgType, web

from tests.localhttp import serve

BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T1"
APP = "A1"
VERIFICATION_TOKEN = "fake-verification-token"
# slack_sdk loads these itself (never NO_PROXY): clear them in tests talking to the fake.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
# Slack allows this many posts per response_url.
RESPONSE_URL_POSTS = 5

# Form bodies and query strings carry these as JSON strings.
_JSON_ARGS = frozenset({"blocks", "attachments", "metadata", "files"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_TS_BASE_MICROS = 1_700_000_000_000_000

DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "U1": {
        "id": "U1",
        "name": "alice",
        "real_name": "Alice Admin",
        "profile": {
            "display_name": "alice",
            "real_name": "Alice Admin",
            "email": "alice@example.org",
        },
    },
    "U2": {
        "id": "U2",
        "name": "bob",
        "real_name": "Bob Builder",
        "profile": {"display_name": "bob", "real_name": "Bob Builder", "email": "bob@example.org"},
    },
    "U3": {
        "id": "U3",
        "name": "vera",
        "real_name": "Vera Viewer",
        "profile": {
            "display_name": "vera",
            "real_name": "Vera Viewer",
            "email": "vera@example.org",
        },
    },
}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    failed: bool = False


@dataclass
class Message:
    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    user: str = BOT_USER
    edited: int = 0

    def to_slack(self, *, include_metadata: bool = True) -> dict[str, Any]:
        """The message as Slack returns it from chat.postMessage or conversations.history."""
        out: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "bot_id": BOT_ID,
            "text": self.text,
            "ts": self.ts,
        }
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments is not None:
            out["attachments"] = self.attachments
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.metadata is not None and include_metadata:
            out["metadata"] = self.metadata
        if self.edited:
            out["edited"] = {"user": self.user, "ts": self.ts}
        return out


@dataclass
class UploadedFile:
    id: str
    filename: str
    title: str
    content: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None


@dataclass
class Ack:
    payload: dict[str, Any] | None
    seconds: float


@dataclass
class _Failure:
    status: int
    error: str
    retry_after: int | None


@dataclass
class _PendingUpload:
    filename: str
    length: int
    content: bytes | None = None


@dataclass
class _Waiter:
    future: asyncio.Future[tuple[dict[str, Any], float]]
    type: str


class _ApiError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _truthy(value: Any) -> bool:
    # Booleans arrive as "1"/"0" in query strings (slack_sdk converts them) or as JSON bools.
    if isinstance(value, str):
        return value.lower() in {"1", "true"}
    return bool(value)


def _decimal(value: Any, default: str) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(default)
    except InvalidOperation:
        raise _ApiError("invalid_ts_oldest") from None


def _decode_json_args(args: dict[str, Any]) -> None:
    for name in _JSON_ARGS & args.keys():
        value = args[name]
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                args[name] = json.loads(value)
            except json.JSONDecodeError:
                raise _ApiError(f"invalid_{name}") from None


async def _read_args(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Query, form and JSON arguments merged (the body wins), and the caller's token."""
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.text())
            except json.JSONDecodeError:
                raise _ApiError("invalid_json") from None
            if isinstance(body, dict):
                args.update(body)
        elif request.content_type in _FORM_TYPES:
            for name, value in (await request.post()).items():
                args[name] = value.file.read() if isinstance(value, web.FileField) else value
    token = None
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth.removeprefix("Bearer ").strip()
    body_token = args.pop("token", None)
    return args, token or body_token


def _error(error: str, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status, headers=headers)


class FakeSlack:
    """Slack's Web API, upload URLs, response_urls and Socket Mode on 127.0.0.1."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        users: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.users: dict[str, dict[str, Any]] = dict(DEFAULT_USERS if users is None else users)
        self.url = ""
        self.api_url = ""
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.deleted: list[Message] = []  # removed by chat.delete
        self.ephemerals: list[dict[str, Any]] = []
        self.files: list[UploadedFile] = []
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.missing_channels: set[str] = set()
        self.outside_channels: set[str] = set()
        # Every frame a socket client sent (acks, and anything unexpected), in order.
        self.acks: list[dict[str, Any]] = []
        # Websocket connections accepted so far: a reconnect makes it grow.
        self.connections = 0

        self._ts = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._response_ids = itertools.count(1)
        self._failures: dict[str, deque[_Failure]] = {}
        self._uploads: dict[str, _PendingUpload] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._waiters: dict[str, _Waiter] = {}
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.join": self._join,
            "conversations.open": self._open,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # -- lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{n}", self._response)
        app.router.add_get("/socket", self._socket_handler)
        # A short shutdown keeps close() quick when a client left a connection open.
        self._runner, base = await serve(app, access_log=None, shutdown_timeout=1.0)
        self.url = base + "/"
        self.api_url = self.url + "api/"

    async def close(self) -> None:
        for waiter in self._waiters.values():
            waiter.future.cancel()
        self._waiters.clear()
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server closing")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- inspection

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def response_url(self) -> str:
        n = str(next(self._response_ids))
        self.responses[n] = []
        return f"{self.url}response/{n}"

    def responses_to(self, response_url: str) -> list[dict[str, Any]]:
        """The payloads posted to a URL from :meth:`response_url`."""
        return self.responses[response_url.rstrip("/").rsplit("/", 1)[-1]]

    # The timeout parameters (ASYNC109) are deliberate: on expiry these raise an
    # AssertionError saying what was awaited, which a bare asyncio.timeout cannot.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                recent = ", ".join(
                    call.method + (" (failed)" if call.failed else "") for call in self.calls[-10:]
                )
                raise AssertionError(
                    f"{getattr(predicate, '__qualname__', predicate)!s} still false after "
                    f"{timeout} s; last calls: [{recent}]; {len(self.messages)} messages, "
                    f"{len(self.ephemerals)} ephemerals, {len(self.files)} files, "
                    f"responses: { {k: len(v) for k, v in self.responses.items()} }"
                )
            await asyncio.sleep(0.01)

    def fail(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 200,
        error: str = "ratelimited",
        retry_after: int | None = None,
    ) -> None:
        queue = self._failures.setdefault(method, deque())
        queue.extend(_Failure(status, error, retry_after) for _ in range(times))

    # -- Web API

    def _next_ts(self) -> str:
        micros = _TS_BASE_MICROS + next(self._ts) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            args, token = await _read_args(request)
            _decode_json_args(args)
        except _ApiError as exc:
            self.calls.append(Call(method, {}, None, time.monotonic(), failed=True))
            return _error(exc.error)
        call = Call(method, args, token, time.monotonic())
        self.calls.append(call)

        queue = self._failures.get(method)
        if queue:
            failure = queue.popleft()
            call.failed = True
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            return _error(failure.error, failure.status, headers)

        handler = self._methods.get(method)
        if handler is None:
            return _error("unknown_method")
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token is None:
            return _error("not_authed")
        if token != wanted:
            return _error("invalid_auth")
        try:
            return web.json_response(handler(args))
        except _ApiError as exc:
            return _error(exc.error)

    def _channel(self, args: dict[str, Any], name: str = "channel") -> str:
        channel = args.get(name)
        if not channel or channel in self.missing_channels:
            raise _ApiError("channel_not_found")
        if channel in self.outside_channels:
            raise _ApiError("not_in_channel")
        return str(channel)

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test",
            "user": "calcifer",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "ws" + self.url.removeprefix("http") + "socket"}

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _ApiError("no_text")
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            text=args.get("text") or "",
            blocks=args.get("blocks"),
            attachments=args.get("attachments"),
            thread_ts=args.get("thread_ts"),
            metadata=args.get("metadata"),
        )
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.to_slack()}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        ts = args.get("ts")
        message = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if message is None:
            raise _ApiError("message_not_found")
        # Slack keeps what an update leaves out, so only the given parts change.
        if "text" in args:
            message.text = args["text"] or ""
        if "blocks" in args:
            message.blocks = args["blocks"]
        if "attachments" in args:
            message.attachments = args["attachments"]
        if "metadata" in args:
            message.metadata = args["metadata"]
        message.edited += 1
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_slack(),
        }

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self._channel(args)
        if not args.get("user"):
            raise _ApiError("user_not_found")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _ApiError("no_text")
        self.ephemerals.append(dict(args))
        return {"ok": True, "message_ts": self._next_ts()}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        oldest = _decimal(args.get("oldest"), "0")
        latest = _decimal(args.get("latest"), "Infinity")
        inclusive = _truthy(args.get("inclusive", False))
        limit = int(args.get("limit") or 100)
        with_metadata = _truthy(args.get("include_all_metadata", False))

        def within(ts: Decimal) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        # As in Slack: thread replies are not in the channel's history (see conversations.replies).
        found = sorted(
            (
                m
                for m in self.messages
                if m.channel == channel and m.thread_ts in (None, m.ts) and within(Decimal(m.ts))
            ),
            key=lambda m: Decimal(m.ts),
            reverse=True,
        )
        return {
            "ok": True,
            "messages": [m.to_slack(include_metadata=with_metadata) for m in found[:limit]],
            "has_more": len(found) > limit,
            "pin_count": 0,
            "response_metadata": {"next_cursor": ""},
        }

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        ts = args.get("ts")
        with_metadata = _truthy(args.get("include_all_metadata", False))
        thread = [m for m in self.messages if m.channel == channel and ts in (m.ts, m.thread_ts)]
        if not thread:
            raise _ApiError("thread_not_found")
        # Oldest first, the parent leading, as Slack answers.
        thread.sort(key=lambda m: Decimal(m.ts))
        limit = int(args.get("limit") or 1000)
        return {
            "ok": True,
            "messages": [m.to_slack(include_metadata=with_metadata) for m in thread[:limit]],
            "has_more": len(thread) > limit,
        }

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        ts = args.get("ts")
        message = next((m for m in self.messages if m.channel == channel and m.ts == ts), None)
        if message is None:
            raise _ApiError("message_not_found")
        self.messages.remove(message)
        self.deleted.append(message)
        return {"ok": True, "channel": channel, "ts": ts}

    def _open(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("users") or "")
        if user not in self.users:
            raise _ApiError("user_not_found")
        # A DM's id is stable per user; "D" + the user id keeps tests readable.
        return {"ok": True, "channel": {"id": "D" + user}}

    def _join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel or channel in self.missing_channels:
            raise _ApiError("channel_not_found")
        self.outside_channels.discard(channel)
        return {"ok": True, "channel": {"id": channel, "is_member": True}}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        if user is None:
            raise _ApiError("user_not_found")
        return {"ok": True, "user": user}

    def _get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        try:
            length = int(args.get("length", ""))
        except ValueError:
            raise _ApiError("invalid_arguments") from None
        if not filename:
            raise _ApiError("invalid_arguments")
        file_id = f"F{next(self._file_ids)}"
        self._uploads[file_id] = _PendingUpload(str(filename), length)
        return {"ok": True, "upload_url": f"{self.url}upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        items = args.get("files")
        if not isinstance(items, list) or not items:
            raise _ApiError("invalid_arguments")
        channel: str | None = None
        if args.get("channel_id"):
            channel = self._channel(args, "channel_id")
        elif args.get("channels"):
            channel = self._channel({"channel": str(args["channels"]).split(",")[0]})
        # Check every file before moving any, so a refused call changes nothing.
        for item in items:
            pending = self._uploads.get(str(item.get("id")))
            if pending is None or pending.content is None:
                raise _ApiError("file_not_found")
        done = []
        for item in items:
            file_id = str(item["id"])
            pending = self._uploads.pop(file_id)
            assert pending.content is not None
            title = item.get("title") or pending.filename
            self.files.append(
                UploadedFile(
                    id=file_id,
                    filename=pending.filename,
                    title=title,
                    content=pending.content,
                    channel=channel,
                    thread_ts=args.get("thread_ts"),
                    initial_comment=args.get("initial_comment"),
                )
            )
            done.append({"id": file_id, "title": title, "name": pending.filename})
        return {"ok": True, "files": done}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        pending = self._uploads.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404, text="file_not_found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            parts = [v for v in form.values() if isinstance(v, web.FileField)]
            content = parts[0].file.read() if parts else str(next(iter(form.values()), "")).encode()
        else:
            content = await request.read()
        pending.content = content
        # text/plain: slack_sdk parses any other content type as JSON and fails.
        return web.Response(text=f"OK - {len(content)}")

    # -- response_url

    async def _response(self, request: web.Request) -> web.StreamResponse:
        posts = self.responses.get(request.match_info["n"])
        if posts is None:
            return web.Response(status=404, text="no_service")
        try:
            payload = json.loads(await request.text())
        except json.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        if len(posts) >= RESPONSE_URL_POSTS:
            return web.Response(status=404, text="used_url")
        posts.append(payload)
        return web.Response(text="ok")

    # -- Socket Mode

    async def _socket_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self._socket = ws
        self.connections += 1
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {"host": "fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP},
        }
        await ws.send_str(json.dumps(hello))
        self._connected.set()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_frame(frame.data)
        finally:
            self._sockets.remove(ws)
            if self._socket is ws:
                self._socket = None
                self._connected.clear()
        return ws

    def _on_frame(self, data: str) -> None:
        received = time.monotonic()
        try:
            frame = json.loads(data)
        except json.JSONDecodeError:
            frame = {"unparsed": data}
        self.acks.append(frame)
        waiter = self._waiters.pop(str(frame.get("envelope_id")), None)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result((frame, received))

    async def connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            opens = len(self.calls_to("apps.connections.open"))
            raise AssertionError(
                f"no Socket Mode client connected within {timeout} s "
                f"({opens} apps.connections.open calls)"
            ) from None

    async def push(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Ack:
        await self.connected(timeout)
        ws = self._socket
        assert ws is not None
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = 0
            envelope["retry_reason"] = ""
        future: asyncio.Future[tuple[dict[str, Any], float]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters[envelope_id] = _Waiter(future, type)
        sent = time.monotonic()
        await ws.send_str(json.dumps(envelope))
        try:
            async with asyncio.timeout(timeout):
                frame, received = await future
        except TimeoutError:
            raise AssertionError(
                f"no ack for {type} envelope {envelope_id} within {timeout} s (bolt acks "
                "nothing when no listener matched or its handler did not answer 200)"
            ) from None
        finally:
            self._waiters.pop(envelope_id, None)
        return Ack(frame.get("payload"), received - sent)

    async def drop_socket(self) -> None:
        ws = self._socket
        if ws is None:
            raise AssertionError("no Socket Mode client is connected")
        self._socket = None
        self._connected.clear()
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"dropped by the test")

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does before it retires a connection."""
        ws = self._socket
        if ws is None:
            raise AssertionError("no Socket Mode client is connected")
        self._connected.clear()
        self._socket = None
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        await ws.send_str(json.dumps(frame))


@contextlib.asynccontextmanager
async def running_fake_slack(**kw: Any) -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(**kw)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


# -- payloads shaped like Slack's, so slack_bolt routes them


_ids = itertools.count(1)


def _unique(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}"


def _channel_name(channel: str) -> str:
    return "general" if channel == "C1" else channel.lower()


def slash_command(
    text: str,
    *,
    user: str = "U1",
    user_name: str = "alice",
    channel: str = "C1",
    response_url: str,
    command: str = "/calcifer",
) -> dict[str, str]:
    """A slash command's form fields (in Socket Mode the ``slash_commands`` payload as is)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM,
        "team_domain": "test",
        "channel_id": channel,
        "channel_name": _channel_name(channel),
        "user_id": user,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": _unique("1337.42."),
    }


def event(event: dict[str, Any]) -> dict[str, Any]:
    """An ``events_api`` envelope payload, also the JSON body of an HTTP event."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM,
        "api_app_id": APP,
        "event": event,
        "type": "event_callback",
        "event_id": _unique("Ev"),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM,
                "user_id": BOT_USER,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def app_mention(
    text: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    ts: str = "1700000100.000100",
    thread_ts: str | None = None,
) -> dict[str, Any]:
    """An ``app_mention`` event; ``text`` is what Slack delivers, e.g. ``"<@UBOT> help"``."""
    inner: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM,
    }
    if thread_ts is not None:
        inner["thread_ts"] = thread_ts
    return inner


def direct_message(
    text: str, *, user: str = "U1", channel: str = "D1", ts: str = "1700000100.000100"
) -> dict[str, Any]:
    """A ``message`` event in an IM channel."""
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM,
    }


def block_action(
    value: str,
    *,
    action_id: str = "calcifer:0",
    user: str = "U1",
    channel: str = "C1",
    message_ts: str,
    message: dict[str, Any] | None = None,
    response_url: str,
    is_ephemeral: bool = False,
) -> dict[str, Any]:
    """A ``block_actions`` payload: Socket Mode type ``interactive``, HTTP form ``payload``."""
    name = next((u["name"] for u in DEFAULT_USERS.values() if u["id"] == user), user.lower())
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": TEAM},
        "api_app_id": APP,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": _unique("1337.43."),
        "team": {"id": TEAM, "domain": "test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": _channel_name(channel)},
        "message": message or {"type": "message", "ts": message_ts, "text": "", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "calcifer",
                "text": {"type": "plain_text", "text": "button"},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def form_body(fields: Mapping[str, str]) -> str:
    """A slash command's HTTP body."""
    return urlencode(fields)


def interactive_body(payload: dict[str, Any]) -> str:
    """An interactive payload's HTTP body: one form field ``payload`` holding JSON."""
    return urlencode({"payload": json.dumps(payload)})


def signed_headers(
    secret: str, body: bytes | str, *, timestamp: int | None = None, content_type: str
) -> dict[str, str]:
    """The headers bolt checks on HTTP requests; pass an old ``timestamp`` to go stale."""
    ts = int(time.time()) if timestamp is None else timestamp
    raw = body.encode() if isinstance(body, str) else body
    base = f"v0:{ts}:".encode() + raw
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
    }


__all__ = [
    "PROXY_VARIABLES",
    "Ack",
    "Call",
    "FakeSlack",
    "Message",
    "UploadedFile",
    "app_mention",
    "block_action",
    "direct_message",
    "event",
    "form_body",
    "interactive_body",
    "running_fake_slack",
    "signed_headers",
    "slash_command",
]
