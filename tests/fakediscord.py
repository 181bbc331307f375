"""A local Discord for wire tests: the REST API (v10), interaction webhooks and the gateway.

The real discord.py client talks to it unmodified; only two process-global URLs change
(``discord.http.Route.BASE = fake.api_url`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)``).
Everything listens on 127.0.0.1 and a port the kernel picks.

Protocol facts it relies on (discord.py 2.7.1, API v10):

- discord.py only parses a body as JSON when ``Content-Type`` is exactly
  ``application/json``; aiohttp's ``json_response`` appends ``; charset=utf-8``, so every
  answer goes through :func:`json_response` here.
- Login is ``GET /users/@me`` (a 401 becomes ``discord.LoginFailure``) then
  ``GET /oauth2/applications/@me`` (``AppInfo`` needs id, name, description, icon,
  bot_public, bot_require_code_grant, owner and verify_key). A plain ``Client`` never
  asks ``/gateway`` or ``/gateway/bot``: it connects to ``DEFAULT_GATEWAY`` with
  ``?v=10&encoding=json&compress=zlib-stream`` (``zstd-stream`` when zstandard is
  installed) but parses text frames as they come, so the fake never compresses.
- Gateway: HELLO (op 10) → the client heartbeats at once (op 1, answered with op 11) and
  IDENTIFYs (op 2) with ``intents``. READY carries ``resume_gateway_url``, where the client
  RESUMEs (op 6) after a drop or an op 7. ``on_ready`` fires ``guild_ready_timeout`` (2 s by
  default, a ``Client`` option) after the last GUILD_CREATE; GUILD_CREATE needs channels
  with ``position``, members with ``flags`` and ``roles``. With the members intent the client
  asks for them (op 8) and waits up to 5 s for GUILD_MEMBERS_CHUNK before ``on_ready``.
  Every IDENTIFY but the first waits 5 s in ``Client.before_identify_hook`` (after op 9 or a
  refused RESUME). Close codes 4004 and 4014 end the client: 4014 as
  ``discord.PrivilegedIntentsRequired``, 4004 as ``ConnectionClosed``.
- Discord dispatches the bot's own messages (and its interaction responses) back as
  MESSAGE_CREATE/MESSAGE_UPDATE; ephemeral ones never.
- Without the Message Content intent (1 << 15) Discord blanks content, embeds, attachments,
  components and polls of other users' messages, except DMs and messages mentioning the bot.
- INTERACTION_CREATE must carry ``attachment_size_limit``, ``version``, ``token`` and
  ``application_id``. A command interaction names its scope in ``data.guild_id``: the
  command tree looks guild commands up there and global ones otherwise.
- discord.py 2.7 posts every callback to ``/interactions/{id}/{token}/callback?with_response=1``
  and reads back an InteractionCallbackResponse: ``{"interaction": {"id", "type",
  "response_message_id", "response_message_loading", "response_message_ephemeral"},
  "resource": {"type", "message"}}``. ``defer()`` is type 5 for commands and type 6 for
  components; ``edit_message`` is type 7. Follow-ups and ``edit_original_response`` go to
  ``/webhooks/{application_id}/{token}[/messages/@original|{id}]`` under ``Route.BASE``,
  without Authorization, always with ``wait=1``. The first follow-up after a type 5 replaces
  the "thinking" message (keeping the defer's ephemerality) instead of adding one.
- A DynamicItem is rebuilt from ``interaction.message.components``: a component interaction
  must carry the whole message with the clicked component in it.
- discord.py retries a 429 only when it has a ``Via`` header (otherwise it assumes a
  Cloudflare ban and raises ``HTTPException``), sleeping the body's ``retry_after``;
  it retries 500/502/504 by itself after 1, 3, 5… s, which is slow in a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import math
import mimetypes
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

from tests.localhttp import serve

JSON = dict[str, Any]

BOT_TOKEN = "OTAw.GfAkEd.c2FsYW1hbmRlci1jYWxjaWZlci1ob3dscy1tb3Zpbmc"
BOT_ID = 900
APPLICATION_ID = BOT_ID  # Discord gives a bot's application the bot user's id
GUILD = 100
EVERYONE_ROLE = GUILD  # the @everyone role's id is the guild's
OPS_ROLE = 300
BOT_ROLE = 301  # the managed role Discord creates when the bot joins
ALERTS = 200
GENERAL = 201
PRIVATE = 202  # the bot cannot see it: REST answers 403 Missing Access
ALICE = 1  # the guild owner
BOB = 2  # an operator through OPS_ROLE
VERA = 3  # a plain member

# Gateway intents (IDENTIFY ``intents`` bits).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
KNOWN_INTENTS = 53608447  # discord.Intents.all().value for discord.py 2.7.1
DEFAULT_INTENTS = KNOWN_INTENTS & ~PRIVILEGED_INTENTS

# Permission bits.
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
ALL_PERMISSIONS = (1 << 51) - 1
EVERYONE_PERMISSIONS = (
    (1 << 0)  # create instant invite
    | (1 << 6)  # add reactions
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 18)  # use external emojis
    | (1 << 26)  # change nickname
    | (1 << 31)  # use application commands
    | (1 << 38)  # send messages in threads
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | (1 << 13)  # + manage messages

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7
COMPONENTS_V2 = 1 << 15

# Interaction types and callback types.
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
MODAL = 9
APPLICATION_COMMAND_AUTOCOMPLETE = 4  # an interaction type
AUTOCOMPLETE_RESULT = 8  # its callback type

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT = 2000

# Close codes the gateway sends that end a session (the client must IDENTIFY anew, or stop).
_SESSION_ENDING_CLOSES = frozenset({4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014})


@dataclass(frozen=True)
class FakeUser:
    id: int
    username: str
    global_name: str | None
    roles: tuple[int, ...] = ()  # guild roles besides @everyone
    bot: bool = False

    def to_discord(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            # Bots keep a four-digit discriminator; users migrated to "0".
            "discriminator": "4242" if self.bot else "0",
            "global_name": self.global_name,
            "avatar": None,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "bot": self.bot,
            "system": False,
            "collectibles": None,
            "primary_guild": None,
        }


BOT_USER = FakeUser(BOT_ID, "calcifer", "Calcifer", roles=(BOT_ROLE,), bot=True)
DEFAULT_USERS: dict[int, FakeUser] = {
    ALICE: FakeUser(ALICE, "alice", "Alice Admin"),
    BOB: FakeUser(BOB, "bob", "Bob Builder", roles=(OPS_ROLE,)),
    VERA: FakeUser(VERA, "vera", "Vera Viewer"),
}


@dataclass
class UploadedFile:
    field: str  # the multipart part name, "files[0]"
    filename: str
    content: bytes
    content_type: str | None


@dataclass
class Request:
    """One REST call as the fake saw it; ``path`` is relative to ``api_url``."""

    method: str
    path: str
    query: dict[str, str]
    json: Any  # the JSON body, or a multipart body's payload_json
    files: list[UploadedFile]
    authorization: str | None
    at: float
    status: int = 0


@dataclass
class Interaction:
    """An INTERACTION_CREATE the fake sent, and everything the bot answered to it."""

    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    payload: JSON
    dispatched_at: float
    message: JSON | None = None  # the message a component is on
    callback_type: int | None = None
    callback: JSON | None = None  # the accepted callback body: {"type", "data"?}
    callback_files: list[UploadedFile] = field(default_factory=list)
    latency: float | None = None  # seconds from dispatch to the accepted callback
    with_response: bool = False
    refused: list[tuple[int, int]] = field(default_factory=list)  # (status, code)
    original: JSON | None = None  # the response message, edited in place
    followups: list[JSON] = field(default_factory=list)
    edits: list[JSON] = field(default_factory=list)  # bodies PATCHed through the webhook
    deleted: list[int] = field(default_factory=list)
    _acked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def ephemeral(self) -> bool:
        """Whether the response (the original message) is visible to the user only."""
        if self.original is not None:
            return bool(self.original["flags"] & EPHEMERAL)
        data = (self.callback or {}).get("data") or {}
        return bool(int(data.get("flags") or 0) & EPHEMERAL)

    # The timeout parameters (ASYNC109) are deliberate: on expiry these raise an
    # AssertionError saying what was awaited, which a bare asyncio.timeout cannot.
    async def responded(self, timeout: float = 5.0) -> Interaction:  # noqa: ASYNC109
        """Wait for the accepted callback."""
        try:
            async with asyncio.timeout(timeout):
                await self._acked.wait()
        except TimeoutError:
            raise AssertionError(
                f"interaction {self.id} (type {self.type}) got no accepted callback within "
                f"{timeout} s; refused: {self.refused}"
            ) from None
        return self

    async def followed_up(self, count: int = 1, timeout: float = 5.0) -> list[JSON]:  # noqa: ASYNC109
        """Wait for ``count`` follow-up messages."""
        await _poll(
            lambda: len(self.followups) >= count,
            timeout,
            lambda: f"interaction {self.id} has {len(self.followups)} of {count} follow-ups",
        )
        return self.followups


@dataclass
class GatewayConnection:
    ws: web.WebSocketResponse
    query: dict[str, str]
    received: list[JSON] = field(default_factory=list)  # every frame the client sent
    session: _Session | None = None
    closed_by_fake: bool = False

    @property
    def intents(self) -> int | None:
        return None if self.session is None else self.session.intents


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int] | None
    seq: int = 0
    connection: GatewayConnection | None = None
    history: list[JSON] = field(default_factory=list)  # dispatches, replayed on RESUME
    ended: bool = False


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int
    retry_after: float
    via: bool
    is_global: bool
    code: int | None
    message: str | None


class DiscordError(Exception):
    """An error answer in Discord's shape."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> JSON:
        out: JSON = {"message": self.message, "code": self.code}
        if self.errors:
            out["errors"] = self.errors
        return out


def _unauthorized() -> DiscordError:
    return DiscordError(401, 0, "401: Unauthorized")


def _unknown_channel() -> DiscordError:
    return DiscordError(404, 10003, "Unknown Channel")


def _unknown_message() -> DiscordError:
    return DiscordError(404, 10008, "Unknown Message")


def _unknown_webhook() -> DiscordError:
    return DiscordError(404, 10015, "Unknown Webhook")


def _unknown_interaction() -> DiscordError:
    return DiscordError(404, 10062, "Unknown interaction")


def _already_acknowledged() -> DiscordError:
    return DiscordError(400, 40060, "Interaction has already been acknowledged.")


def _missing_access() -> DiscordError:
    return DiscordError(403, 50001, "Missing Access")


def _invalid_form(errors: JSON) -> DiscordError:
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly, as discord.py requires."""
    response = web.Response(body=json.dumps(data).encode(), status=status, headers=headers)
    response.headers["Content-Type"] = "application/json"
    return response


def _no_content() -> web.Response:
    return web.Response(status=204)


def _now_iso(at_ms: int | None = None) -> str:
    seconds = (at_ms if at_ms is not None else time.time() * 1000) / 1000
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def snowflake_time_ms(snowflake: int) -> int:
    return (snowflake >> 22) + DISCORD_EPOCH_MS


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true"}


async def _poll(
    predicate: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109
    describe: Callable[[], str],
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout} s: {describe()}")
        await asyncio.sleep(0.005)


def _error_leaf(code: str, message: str) -> JSON:
    return {"_errors": [{"code": code, "message": message}]}


def _validate_message(body: JSON, *, components_v2: bool) -> None:
    """The limits a bot most easily trips over, answered with Discord's 50035 shape."""
    errors: JSON = {}
    content = body.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        errors["content"] = _error_leaf(
            "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        errors["embeds"] = _error_leaf("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for n, embed in enumerate(embeds):
        embed_errors: JSON = {}
        for key, limit in (("title", 256), ("description", 4096)):
            text = embed.get(key) or ""
            total += len(text)
            if len(text) > limit:
                embed_errors[key] = _error_leaf(
                    "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                )
        fields = embed.get("fields") or []
        if len(fields) > 25:
            embed_errors["fields"] = _error_leaf(
                "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        for m, item in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                text = str(item.get(key) or "")
                total += len(text)
                if not text:
                    embed_errors.setdefault("fields", {}).setdefault(str(m), {})[key] = _error_leaf(
                        "BASE_TYPE_REQUIRED", "This field is required"
                    )
                elif len(text) > limit:
                    embed_errors.setdefault("fields", {}).setdefault(str(m), {})[key] = _error_leaf(
                        "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                    )
        footer = (embed.get("footer") or {}).get("text") or ""
        author = (embed.get("author") or {}).get("name") or ""
        total += len(footer) + len(author)
        if embed_errors:
            errors.setdefault("embeds", {})[str(n)] = embed_errors
    if total > 6000:
        errors.setdefault("embeds", {}).update(
            _error_leaf("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        )
    components = body.get("components") or []
    if not components_v2:
        if len(components) > 5:
            errors["components"] = _error_leaf(
                "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length."
            )
        seen: set[str] = set()
        for n, row in enumerate(components):
            items = row.get("components") or []
            if row.get("type") != 1 or not 1 <= len(items) <= 5:
                errors.setdefault("components", {})[str(n)] = _error_leaf(
                    "UI_COMPONENT_INVALID", "An action row needs 1 to 5 components."
                )
                continue
            for m, item in enumerate(items):
                custom_id = item.get("custom_id")
                problem: JSON | None = None
                if custom_id is not None and len(custom_id) > 100:
                    problem = _error_leaf("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
                elif custom_id is not None and custom_id in seen:
                    problem = _error_leaf(
                        "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"
                    )
                elif len(item.get("label") or "") > 80:
                    problem = _error_leaf("BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
                if custom_id is not None:
                    seen.add(custom_id)
                if problem is not None:
                    row_errors = errors.setdefault("components", {}).setdefault(str(n), {})
                    row_errors.setdefault("components", {})[str(m)] = problem
    if errors:
        raise _invalid_form(errors)


_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class FakeDiscord:
    """Discord's REST API, interaction webhooks and gateway on 127.0.0.1."""

    def __init__(
        self,
        *,
        token: str = BOT_TOKEN,
        granted_intents: int | None = None,
        message_content: bool = False,
        heartbeat_interval: int = 41250,
        interaction_timeout: float = 3.0,
        nonce_window: float = 300.0,
        users: Mapping[int, FakeUser] | None = None,
    ) -> None:
        self.token = token
        # Read at each IDENTIFY, so a test may change it before the client connects.
        self.granted_intents = DEFAULT_INTENTS if granted_intents is None else granted_intents
        if message_content:
            self.granted_intents |= MESSAGE_CONTENT
        self.heartbeat_interval = heartbeat_interval
        self.interaction_timeout = interaction_timeout
        self.nonce_window = nonce_window
        self.users: dict[int, FakeUser] = dict(DEFAULT_USERS if users is None else users)
        self.users[BOT_ID] = BOT_USER
        self.owner_id = ALICE
        self.roles: dict[int, JSON] = {
            EVERYONE_ROLE: _role(EVERYONE_ROLE, "@everyone", 0, EVERYONE_PERMISSIONS),
            OPS_ROLE: _role(OPS_ROLE, "ops", 1, EVERYONE_PERMISSIONS),
            BOT_ROLE: _role(BOT_ROLE, "Calcifer", 2, BOT_PERMISSIONS, bot_id=BOT_ID),
        }
        hidden = [
            {"id": str(EVERYONE_ROLE), "type": 0, "allow": "0", "deny": str(VIEW_CHANNEL)},
            {"id": str(OPS_ROLE), "type": 0, "allow": str(VIEW_CHANNEL), "deny": "0"},
        ]
        self.channels: dict[int, JSON] = {
            ALERTS: _text_channel(ALERTS, "alerts", 0, "Where alerts land"),
            GENERAL: _text_channel(GENERAL, "general", 1, None),
            PRIVATE: _text_channel(PRIVATE, "private", 2, None, hidden),
        }
        self.inaccessible_channels: set[int] = {PRIVATE}

        self.url = ""
        self.api_url = ""
        self.gateway_url = ""
        self.requests: list[Request] = []
        self.interactions: list[Interaction] = []
        self.commands: dict[int | None, list[JSON]] = {}  # scope (guild id, None = global)
        self.syncs: list[int | None] = []  # the scope of each bulk overwrite, in order
        self.deleted: list[JSON] = []
        self.visible_to: dict[int, int] = {}  # ephemeral message id → the one user seeing it
        self.connections: list[GatewayConnection] = []
        self.presence_updates: list[JSON] = []
        self.identifications = 0
        self.resumes = 0
        self.heartbeats = 0
        self.ack_heartbeats = True  # False makes the connection look dead to the client
        # Exceptions inside the fake itself; a test can assert it stayed empty.
        self.errors: list[BaseException] = []

        self._messages: dict[int, list[JSON]] = {}
        self._by_id: dict[int, JSON] = {}
        self._attachments: dict[int, bytes] = {}
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._dms: dict[int, int] = {}  # user id → DM channel id
        self._sessions: list[_Session] = []
        self._failures: deque[_Failure] = deque()
        self._interactions_by_token: dict[str, Interaction] = {}
        self._last_snowflake = 0
        self._increment = itertools.count()
        self._runner: web.AppRunner | None = None
        _Route = tuple[str, re.Pattern[str], Callable[..., Awaitable[web.StreamResponse]], bool]
        self._routes: list[_Route] = []
        for method, pattern, handler, auth in (
            ("GET", r"/users/@me", self._get_me, True),
            ("GET", r"/users/(?P<user_id>\d+)", self._get_user, True),
            ("POST", r"/users/@me/channels", self._open_dm, True),
            ("GET", r"/oauth2/applications/@me", self._get_application, True),
            ("GET", r"/applications/@me", self._get_application, True),
            ("GET", r"/gateway", self._get_gateway, False),
            ("GET", r"/gateway/bot", self._get_gateway_bot, True),
            ("GET", r"/applications/(?P<app>\d+)/commands", self._get_commands, True),
            ("PUT", r"/applications/(?P<app>\d+)/commands", self._put_commands, True),
            (
                "GET",
                r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands",
                self._get_commands,
                True,
            ),
            (
                "PUT",
                r"/applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands",
                self._put_commands,
                True,
            ),
            ("GET", r"/guilds/(?P<guild>\d+)", self._get_guild, True),
            ("GET", r"/guilds/(?P<guild>\d+)/channels", self._get_guild_channels, True),
            ("GET", r"/guilds/(?P<guild>\d+)/members/(?P<user_id>\d+)", self._get_member, True),
            ("GET", r"/channels/(?P<cid>\d+)", self._get_channel, True),
            ("GET", r"/channels/(?P<cid>\d+)/messages", self._history, True),
            ("POST", r"/channels/(?P<cid>\d+)/messages", self._create_message, True),
            ("GET", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._get_message, True),
            ("PATCH", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._edit_message, True),
            (
                "DELETE",
                r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)",
                self._delete_message,
                True,
            ),
            ("POST", r"/channels/(?P<cid>\d+)/typing", self._typing, True),
            (
                "PUT",
                r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<emoji>[^/]+)/@me",
                self._add_reaction,
                True,
            ),
            (
                "DELETE",
                r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<emoji>[^/]+)/@me",
                self._remove_reaction,
                True,
            ),
            # The interaction token in the path is the credential: no Authorization.
            (
                "POST",
                r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback",
                self._callback,
                False,
            ),
            ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._followup, False),
            (
                "GET",
                r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                self._get_webhook_message,
                False,
            ),
            (
                "PATCH",
                r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                self._edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                self._delete_webhook_message,
                False,
            ),
        ):
            self._routes.append((method, re.compile(pattern), handler, auth))

    # -- lifecycle

    async def start(self) -> None:
        # Discord takes up to 25 MiB of attachments per message by default.
        app = web.Application(client_max_size=26 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._api)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{cid}/{aid}/{filename}", self._attachment)
        # A short shutdown keeps close() quick when a client left a connection open.
        self._runner, self.url = await serve(app, access_log=None, shutdown_timeout=1.0)
        self.api_url = f"{self.url}/api/v10"
        self.gateway_url = self.url.replace("http://", "ws://", 1) + "/gateway"

    async def close(self) -> None:
        for conn in self.live_connections:
            conn.closed_by_fake = True
            await conn.ws.close(code=1001, message=b"fake discord closing")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- inspection

    @property
    def live_connections(self) -> list[GatewayConnection]:
        return [c for c in self.connections if not c.ws.closed]

    @property
    def intents(self) -> int | None:
        """The intents the newest live session identified with."""
        session = self._newest_live_session()
        return None if session is None else session.intents

    def messages(self, channel_id: int) -> list[JSON]:
        """The channel's messages, oldest first, ephemeral ones included (live dicts)."""
        return list(self._messages.get(channel_id, []))

    def message(self, message_id: int | str) -> JSON | None:
        return self._by_id.get(int(message_id))

    def attachment_content(self, attachment_id: int | str) -> bytes:
        return self._attachments[int(attachment_id)]

    def requests_to(self, method: str, path_regex: str) -> list[Request]:
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if method in ("*", r.method) and pattern.fullmatch(r.path) is not None
        ]

    def dm_channel_id(self, user_id: int) -> int:
        """The DM channel between the bot and a user, created on first use."""
        if user_id not in self._dms:
            channel_id = self._snowflake()
            self._dms[user_id] = channel_id
            self.channels[channel_id] = {
                "id": str(channel_id),
                "type": 1,
                "recipients": [self._user(user_id).to_discord()],
                "last_message_id": None,
                "flags": 0,
            }
        return self._dms[user_id]

    def add_user(
        self, user_id: int, username: str, global_name: str | None = None, roles: Iterable[int] = ()
    ) -> FakeUser:
        user = FakeUser(user_id, username, global_name, tuple(roles))
        self.users[user_id] = user
        return user

    def permissions(
        self, user_id: int, channel_id: int | None = None, role_ids: Iterable[int] | None = None
    ) -> int:
        """Discord's permission resolution for a member, optionally in a channel."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        roles = list(self._user(user_id).roles if role_ids is None else role_ids)
        value = int(self.roles[EVERYONE_ROLE]["permissions"])
        for role_id in roles:
            if role_id in self.roles:
                value |= int(self.roles[role_id]["permissions"])
        if value & ADMINISTRATOR:
            return ALL_PERMISSIONS
        channel = self.channels.get(channel_id) if channel_id is not None else None
        if channel is None or channel["type"] == 1:
            return value
        overwrites = {int(o["id"]): o for o in channel.get("permission_overwrites", [])}
        everyone = overwrites.get(EVERYONE_ROLE)
        if everyone is not None:
            value = (value & ~int(everyone["deny"])) | int(everyone["allow"])
        allow = deny = 0
        for role_id in roles:
            overwrite = overwrites.get(role_id)
            if overwrite is not None and overwrite["type"] == 0:
                allow |= int(overwrite["allow"])
                deny |= int(overwrite["deny"])
        value = (value & ~deny) | allow
        member = overwrites.get(user_id)
        if member is not None and member["type"] == 1:
            value = (value & ~int(member["deny"])) | int(member["allow"])
        return value

    # The timeout parameters (ASYNC109) are deliberate, as in Interaction.responded.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        def describe() -> str:
            recent = ", ".join(f"{r.method} {r.path} {r.status}" for r in self.requests[-8:])
            return (
                f"{getattr(predicate, '__qualname__', predicate)!s} still false; "
                f"last requests: [{recent}]"
            )

        await _poll(predicate, timeout, describe)

    async def wait_for_message(
        self,
        channel_id: int,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSON:
        """The first message in the channel (oldest first) matching ``predicate``."""
        found: list[JSON] = []

        def check() -> bool:
            for message in self._messages.get(channel_id, []):
                if predicate is None or predicate(message):
                    found.append(message)
                    return True
            return False

        def describe() -> str:
            contents = [m["content"][:40] for m in self._messages.get(channel_id, [])]
            return f"no matching message in channel {channel_id}; contents: {contents}"

        await _poll(check, timeout, describe)
        return found[0]

    async def wait_ready(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``count`` IDENTIFYs got READY and GUILD_CREATE, and one is still live."""
        await _poll(
            lambda: self.identifications >= count and self._newest_live_session() is not None,
            timeout,
            lambda: (
                f"{self.identifications} of {count} identifications, "
                f"{len(self.live_connections)} live connections"
            ),
        )

    async def wait_resumed(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await _poll(
            lambda: self.resumes >= count and self._newest_live_session() is not None,
            timeout,
            lambda: f"{self.resumes} of {count} resumes",
        )

    # -- fault injection

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        count: int = 1,
        retry_after: float = 0.05,
        via: bool = True,
        is_global: bool = False,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching REST calls with an error.

        ``path_regex`` must match the whole path under ``api_url`` ("/channels/200/messages");
        ``method`` may be "*". A 429 without ``via`` is what discord.py takes for a Cloudflare
        ban: it raises instead of retrying.
        """
        self._failures.append(
            _Failure(
                method.upper(),
                re.compile(path_regex),
                status,
                count,
                retry_after,
                via,
                is_global,
                code,
                message,
            )
        )

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method in ("*", method) and failure.pattern.fullmatch(path):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _failure_response(self, failure: _Failure) -> web.Response:
        headers: dict[str, str] = {}
        if failure.via:
            headers["Via"] = "1.1 google"
        if failure.status != 429:
            body = {
                "message": failure.message or _reason(failure.status),
                "code": failure.code or 0,
            }
            return json_response(body, failure.status, headers)
        bucket = hashlib.sha1(failure.pattern.pattern.encode()).hexdigest()[:16]
        headers.update(
            {
                "Retry-After": str(math.ceil(failure.retry_after)),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + failure.retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{failure.retry_after:.3f}",
                "X-RateLimit-Bucket": bucket,
                "X-RateLimit-Scope": "global" if failure.is_global else "user",
            }
        )
        if failure.is_global:
            headers["X-RateLimit-Global"] = "true"
        limited: JSON = {
            "message": failure.message or "You are being rate limited.",
            "retry_after": failure.retry_after,
            "global": failure.is_global,
        }
        if failure.code is not None:
            limited["code"] = failure.code
        return json_response(limited, 429, headers)

    # -- REST plumbing

    async def _api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        record = Request(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=None,
            files=[],
            authorization=request.headers.get("Authorization"),
            at=time.monotonic(),
        )
        self.requests.append(record)
        try:
            record.json, record.files = await _read_body(request)
        except DiscordError as exc:
            record.status = exc.status
            return json_response(exc.body(), exc.status)

        failure = self._take_failure(request.method, path)
        if failure is not None:
            record.status = failure.status
            return self._failure_response(failure)

        try:
            response = await self._route(record)
        except DiscordError as exc:
            response = json_response(exc.body(), exc.status)
        except Exception as exc:
            # discord.py would retry a 500 for some 16 s; a 400 fails the call at once.
            self.errors.append(exc)
            response = json_response({"message": f"fake discord bug: {exc!r}", "code": 0}, 400)
        record.status = response.status
        return response

    async def _route(self, record: Request) -> web.StreamResponse:
        path_known = False
        for method, pattern, handler, auth in self._routes:
            match = pattern.fullmatch(record.path)
            if match is None:
                continue
            path_known = True
            if method != record.method:
                continue
            if auth and record.authorization != f"Bot {self.token}":
                raise _unauthorized()
            return await handler(record, **match.groupdict())
        if path_known:
            raise DiscordError(405, 0, "405: Method Not Allowed")
        raise DiscordError(404, 0, "404: Not Found")

    # -- REST: identity, gateway, commands

    async def _get_me(self, record: Request) -> web.StreamResponse:
        me = BOT_USER.to_discord()
        me.update(verified=True, mfa_enabled=False, flags=0, locale="en-US", email=None)
        return json_response(me)

    async def _get_user(self, record: Request, user_id: str) -> web.StreamResponse:
        user = self.users.get(int(user_id))
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return json_response(user.to_discord())

    async def _get_application(self, record: Request) -> web.StreamResponse:
        return json_response(self.application())

    def application(self) -> JSON:
        # The _LIMITED gateway flags are what an unverified bot (< 100 guilds) gets when the
        # privileged intent is switched on in the developer portal.
        flags = 0
        if self.granted_intents & GUILD_PRESENCES:
            flags |= 1 << 13
        if self.granted_intents & GUILD_MEMBERS:
            flags |= 1 << 15
        if self.granted_intents & MESSAGE_CONTENT:
            flags |= 1 << 19
        return {
            "id": str(APPLICATION_ID),
            "name": "Calcifer",
            "icon": None,
            "description": "Chat-ops assistant",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": False,
            "bot_require_code_grant": False,
            "bot": BOT_USER.to_discord(),
            "verify_key": "0" * 64,
            "owner": self._user(self.owner_id).to_discord(),
            "team": None,
            "flags": flags,
            "rpc_origins": [],
            "redirect_uris": [],
            "tags": [],
            "interactions_endpoint_url": None,  # set, and discord.py gets no interactions
            "role_connections_verification_url": None,
            "approximate_guild_count": 1,
            "integration_types_config": {"0": {}},
        }

    async def _get_gateway(self, record: Request) -> web.StreamResponse:
        return json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, record: Request) -> web.StreamResponse:
        return json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    def _check_app(self, app: str) -> None:
        if int(app) != APPLICATION_ID:
            raise DiscordError(403, 50001, "Missing Access")

    async def _get_commands(
        self, record: Request, app: str, guild: str | None = None
    ) -> web.StreamResponse:
        self._check_app(app)
        scope = None if guild is None else int(guild)
        return json_response(self.commands.get(scope, []))

    async def _put_commands(
        self, record: Request, app: str, guild: str | None = None
    ) -> web.StreamResponse:
        self._check_app(app)
        scope = None if guild is None else int(guild)
        if scope is not None and scope != GUILD:
            raise _missing_access()
        if not isinstance(record.json, list):
            raise _invalid_form({"_errors": [{"code": "LIST_TYPE_CONVERT", "message": "list"}]})
        previous = {(c["name"], c.get("type", 1)): c for c in self.commands.get(scope, [])}
        stored = []
        for n, body in enumerate(record.json):
            name = body.get("name") or ""
            kind = body.get("type", 1)
            if not re.fullmatch(r"[-_\w]{1,32}", name) or name != name.lower():
                raise _invalid_form(
                    {str(n): {"name": _error_leaf("APPLICATION_COMMAND_INVALID_NAME", name)}}
                )
            if kind == 1 and not 1 <= len(body.get("description") or "") <= 100:
                raise _invalid_form(
                    {str(n): {"description": _error_leaf("BASE_TYPE_BAD_LENGTH", "1-100")}}
                )
            old = previous.get((name, kind))
            command = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "contexts": None,
                "integration_types": [0],
                **body,
                # Discord keeps a command's id when an overwrite keeps its name and type.
                "id": old["id"] if old else str(self._snowflake()),
                "application_id": str(APPLICATION_ID),
                "version": str(self._snowflake()),
            }
            if scope is not None:
                command["guild_id"] = str(scope)
            stored.append(command)
        self.commands[scope] = stored
        self.syncs.append(scope)
        return json_response(stored)

    # -- REST: guild and channels

    async def _get_guild(self, record: Request, guild: str) -> web.StreamResponse:
        if int(guild) != GUILD:
            raise DiscordError(404, 10004, "Unknown Guild")
        data = self._guild_object()
        return json_response(data)

    async def _get_guild_channels(self, record: Request, guild: str) -> web.StreamResponse:
        if int(guild) != GUILD:
            raise DiscordError(404, 10004, "Unknown Guild")
        return json_response([c for c in self.channels.values() if c["type"] != 1])

    async def _get_member(self, record: Request, guild: str, user_id: str) -> web.StreamResponse:
        if int(guild) != GUILD:
            raise DiscordError(404, 10004, "Unknown Guild")
        if int(user_id) not in self.users:
            raise DiscordError(404, 10007, "Unknown Member")
        return json_response(self._member(int(user_id)))

    def _channel(self, cid: str | int) -> JSON:
        channel = self.channels.get(int(cid))
        if channel is None:
            raise _unknown_channel()
        if int(cid) in self.inaccessible_channels:
            raise _missing_access()
        return channel

    async def _get_channel(self, record: Request, cid: str) -> web.StreamResponse:
        return json_response(self._channel(cid))

    async def _open_dm(self, record: Request) -> web.StreamResponse:
        body = record.json if isinstance(record.json, dict) else {}
        try:
            user_id = int(body.get("recipient_id") or 0)
        except (TypeError, ValueError):
            user_id = 0
        if user_id not in self.users or user_id == BOT_ID:
            raise _invalid_form({"recipient_id": _error_leaf("NUMBER_TYPE_COERCE", "unknown")})
        return json_response(self.channels[self.dm_channel_id(user_id)])

    async def _typing(self, record: Request, cid: str) -> web.StreamResponse:
        self._channel(cid)
        return _no_content()

    # -- REST: messages

    async def _history(self, record: Request, cid: str) -> web.StreamResponse:
        self._channel(cid)
        try:
            limit = max(1, min(100, int(record.query.get("limit", "50"))))
        except ValueError:
            raise _invalid_form({"limit": _error_leaf("NUMBER_TYPE_COERCE", "int")}) from None
        # Ephemeral messages exist for their one user, never in a channel's history.
        visible = [
            m for m in self._messages.get(int(cid), []) if int(m["id"]) not in self.visible_to
        ]
        if "after" in record.query:
            after = int(record.query["after"])
            picked = [m for m in visible if int(m["id"]) > after][:limit]
        elif "around" in record.query:
            around = int(record.query["around"])
            older = [m for m in visible if int(m["id"]) <= around][-(limit // 2 + limit % 2) :]
            newer = [m for m in visible if int(m["id"]) > around][: limit // 2]
            picked = older + newer
        else:
            before = int(record.query.get("before", str(1 << 63)))
            picked = [m for m in visible if int(m["id"]) < before][-limit:]
        return json_response(list(reversed(picked)))  # newest first, as Discord answers

    def _stored(self, cid: str | int, mid: str | int) -> JSON:
        message = self._by_id.get(int(mid))
        # An ephemeral message only exists for its user and the interaction webhook.
        if message is None or int(message["channel_id"]) != int(cid) or int(mid) in self.visible_to:
            raise _unknown_message()
        return message

    async def _get_message(self, record: Request, cid: str, mid: str) -> web.StreamResponse:
        self._channel(cid)
        return json_response(self._stored(cid, mid))

    async def _create_message(self, record: Request, cid: str) -> web.StreamResponse:
        channel = self._channel(cid)
        body = self._body(record)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get((BOT_ID, str(nonce)))
            if seen is not None and time.monotonic() - seen[1] < self.nonce_window:
                existing = self._by_id.get(seen[0])
                if existing is not None:
                    return json_response(existing)
        message = self._new_message(channel, body, record.files)
        if nonce is not None:
            self._nonces[(BOT_ID, str(nonce))] = (int(message["id"]), time.monotonic())
        await self._store_and_dispatch(message)
        return json_response(message)

    async def _edit_message(self, record: Request, cid: str, mid: str) -> web.StreamResponse:
        self._channel(cid)
        message = self._stored(cid, mid)
        if int(message["author"]["id"]) != BOT_ID:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        self._apply_edit(message, self._body(record), record.files)
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return json_response(message)

    async def _delete_message(self, record: Request, cid: str, mid: str) -> web.StreamResponse:
        self._channel(cid)
        await self._remove(self._stored(cid, mid))
        return _no_content()

    async def _add_reaction(
        self, record: Request, cid: str, mid: str, emoji: str
    ) -> web.StreamResponse:
        self._channel(cid)
        message = self._stored(cid, mid)
        name, emoji_id = _parse_emoji(emoji)
        reactions: list[JSON] = message.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["emoji"]["name"] == name:
                if not reaction["me"]:
                    reaction["me"] = True
                    reaction["count"] += 1
                break
        else:
            reactions.append(
                {
                    "emoji": {"id": emoji_id, "name": name},
                    "count": 1,
                    "count_details": {"burst": 0, "normal": 1},
                    "me": True,
                    "me_burst": False,
                    "burst_colors": [],
                }
            )
        return _no_content()

    async def _remove_reaction(
        self, record: Request, cid: str, mid: str, emoji: str
    ) -> web.StreamResponse:
        self._channel(cid)
        message = self._stored(cid, mid)
        name = _parse_emoji(emoji)[0]
        message["reactions"] = [
            r for r in message.get("reactions", []) if not (r["emoji"]["name"] == name and r["me"])
        ]
        return _no_content()

    async def _attachment(self, request: web.Request) -> web.StreamResponse:
        content = self._attachments.get(int(request.match_info["aid"]))
        if content is None:
            return web.Response(status=404, text="not found")
        ctype = mimetypes.guess_type(request.match_info["filename"])[0]
        return web.Response(body=content, content_type=ctype or "application/octet-stream")

    def _body(self, record: Request) -> JSON:
        if not isinstance(record.json, dict):
            raise _invalid_form({"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "dict"}]})
        return record.json

    def _new_message(
        self,
        channel: JSON,
        body: JSON,
        files: list[UploadedFile],
        *,
        kind: int = 0,
        extra_flags: int = 0,
        interaction: Interaction | None = None,
    ) -> JSON:
        flags = int(body.get("flags") or 0)
        components_v2 = bool(flags & COMPONENTS_V2)
        _validate_message(body, components_v2=components_v2)
        channel_id = int(channel["id"])
        message_id = self._snowflake()
        message: JSON = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": BOT_USER.to_discord(),
            "content": body.get("content") or "",
            "timestamp": _now_iso(snowflake_time_ms(message_id)),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._build_attachments(channel_id, body.get("attachments"), files, []),
            "embeds": [_normalize_embed(e) for e in body.get("embeds") or []],
            "components": body.get("components") or [],
            "pinned": False,
            "type": kind,
            # Only these flags may be set by a sender; the rest are Discord's to give.
            "flags": (flags & (4 | 4096 | COMPONENTS_V2)) | extra_flags,
            "reactions": [],
        }
        if channel["type"] != 1:
            message["guild_id"] = str(GUILD)
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if body.get("poll"):
            message["poll"] = body["poll"]
        if interaction is not None:
            message["webhook_id"] = str(APPLICATION_ID)
            message["application_id"] = str(APPLICATION_ID)
            metadata: JSON = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self._user(interaction.user_id).to_discord(),
                "authorizing_integration_owners": interaction.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if interaction.type == APPLICATION_COMMAND:
                metadata["name"] = interaction.payload["data"]["name"]
                metadata["command_type"] = 1
            if interaction.message is not None:
                metadata["interacted_message_id"] = interaction.message["id"]
            if interaction.original is not None:
                metadata["original_response_message_id"] = interaction.original["id"]
            message["interaction_metadata"] = metadata
        replied: JSON | None = None
        reference = body.get("message_reference")
        if reference:
            replied = self._attach_reference(message, channel_id, reference, body)
        if not components_v2 and not (
            message["content"]
            or message["embeds"]
            or message["attachments"]
            or message["components"]
            or body.get("sticker_ids")
            or body.get("poll")
            or extra_flags & LOADING
        ):
            raise DiscordError(400, 50006, "Cannot send an empty message")
        self._resolve_mentions(message, body.get("allowed_mentions"), replied)
        return message

    def _attach_reference(
        self, message: JSON, channel_id: int, reference: JSON, body: JSON
    ) -> JSON | None:
        """Make ``message`` a reply; returns the replied-to author when Discord pings them."""
        target = self._by_id.get(int(reference.get("message_id") or 0))
        if target is None or int(target["channel_id"]) != int(
            reference.get("channel_id") or channel_id
        ):
            if reference.get("fail_if_not_exists", True):
                raise _invalid_form(
                    {
                        "message_reference": _error_leaf(
                            "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                        )
                    }
                )
            return None
        message["type"] = 19
        message["message_reference"] = {
            "type": 0,
            "message_id": target["id"],
            "channel_id": target["channel_id"],
            **({"guild_id": target["guild_id"]} if "guild_id" in target else {}),
        }
        nested = copy.deepcopy(target)
        # Discord resolves one level only: the nested message names its reference, no more.
        nested.pop("referenced_message", None)
        message["referenced_message"] = nested
        allowed = body.get("allowed_mentions")
        pinged = allowed is None or bool(allowed.get("replied_user"))
        if pinged and int(target["author"]["id"]) != BOT_ID:
            author: JSON = target["author"]
            return author
        return None

    def _resolve_mentions(
        self, message: JSON, allowed: JSON | None, replied: JSON | None = None
    ) -> None:
        # Without allowed_mentions Discord parses everything; with it, only what it lists.
        parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse", []))
        users = {int(u) for u in (allowed or {}).get("users", [])}
        roles = {int(r) for r in (allowed or {}).get("roles", [])}
        content = message["content"]
        mentions: list[JSON] = []
        seen: set[int] = set()
        for raw in _MENTION.findall(content):
            uid = int(raw)
            if uid in self.users and uid not in seen and ("users" in parse or uid in users):
                seen.add(uid)
                mentions.append(self.users[uid].to_discord())
        if replied is not None and int(replied["id"]) not in seen:
            mentions.append(replied)
        message["mentions"] = mentions
        message["mention_roles"] = [
            raw
            for raw in dict.fromkeys(_ROLE_MENTION.findall(content))
            if int(raw) in self.roles and ("roles" in parse or int(raw) in roles)
        ]
        message["mention_everyone"] = "everyone" in parse and (
            "@everyone" in content or "@here" in content
        )

    def _build_attachments(
        self,
        channel_id: int,
        entries: list[JSON] | None,
        files: list[UploadedFile],
        existing: list[JSON],
    ) -> list[JSON]:
        by_field = {f.field: f for f in files}
        if entries is None:
            if not files:
                return list(existing)
            entries = [{"id": n} for n in range(len(files))]
        kept = {a["id"]: a for a in existing}
        out: list[JSON] = []
        for n, entry in enumerate(entries):
            entry_id = str(entry.get("id"))
            if entry_id in kept:
                out.append(kept[entry_id])
                continue
            upload = by_field.get(f"files[{entry_id}]")
            if upload is None:
                raise _invalid_form(
                    {"attachments": {str(n): _error_leaf("ATTACHMENT_NOT_FOUND", entry_id)}}
                )
            attachment_id = self._snowflake()
            filename = str(entry.get("filename") or upload.filename)
            self._attachments[attachment_id] = upload.content
            url = f"{self.url}/attachments/{channel_id}/{attachment_id}/{filename}"
            attachment: JSON = {
                "id": str(attachment_id),
                "filename": filename,
                "size": len(upload.content),
                "url": url,
                "proxy_url": url,
                "content_type": mimetypes.guess_type(filename)[0] or upload.content_type,
                "flags": 0,
            }
            if entry.get("description") is not None:
                attachment["description"] = entry["description"]
            out.append(attachment)
        return out

    def _apply_edit(self, message: JSON, body: JSON, files: list[UploadedFile]) -> None:
        was_loading = bool(message["flags"] & LOADING)
        flags = int(body.get("flags", message["flags"]) or 0)
        merged = {**message, **{k: v for k, v in body.items() if k != "attachments"}}
        _validate_message(merged, components_v2=bool(flags & COMPONENTS_V2))
        # Discord keeps what an edit leaves out, so only the given parts change.
        if "content" in body:
            message["content"] = body["content"] or ""
        if "embeds" in body:
            message["embeds"] = [_normalize_embed(e) for e in body["embeds"] or []]
        if "components" in body:
            message["components"] = body["components"] or []
        if "attachments" in body or files:
            message["attachments"] = self._build_attachments(
                int(message["channel_id"]), body.get("attachments"), files, message["attachments"]
            )
        if "flags" in body:
            keep = message["flags"] & (EPHEMERAL | COMPONENTS_V2)
            message["flags"] = (int(body["flags"] or 0) & (4 | COMPONENTS_V2)) | keep
        if "content" in body:
            self._resolve_mentions(message, body.get("allowed_mentions"))
        message["flags"] &= ~LOADING
        if not was_loading:  # completing a deferred response is no edit
            message["edited_timestamp"] = _now_iso()

    async def _store_and_dispatch(self, message: JSON, *, visible_to: int | None = None) -> None:
        channel_id = int(message["channel_id"])
        self._messages.setdefault(channel_id, []).append(message)
        self._by_id[int(message["id"])] = message
        if visible_to is not None:
            self.visible_to[int(message["id"])] = visible_to
            return
        channel = self.channels.get(channel_id)
        if channel is not None:
            channel["last_message_id"] = message["id"]
        await self._dispatch_message("MESSAGE_CREATE", message)

    async def _remove(self, message: JSON) -> None:
        channel_id = int(message["channel_id"])
        self._messages[channel_id].remove(message)
        del self._by_id[int(message["id"])]
        self.deleted.append(message)
        if self.visible_to.pop(int(message["id"]), None) is None:
            event: JSON = {"id": message["id"], "channel_id": message["channel_id"]}
            if "guild_id" in message:
                event["guild_id"] = message["guild_id"]
            await self._dispatch(
                "MESSAGE_DELETE", event, needs=GUILD_MESSAGES if "guild_id" in message else None
            )

    # -- REST: interactions

    async def _callback(self, record: Request, iid: str, token: str) -> web.StreamResponse:
        interaction = self._interactions_by_token.get(token)
        if interaction is None or interaction.id != int(iid):
            raise _unknown_interaction()
        received = time.monotonic()
        late = received - interaction.dispatched_at > self.interaction_timeout
        if interaction.callback_type is not None:
            interaction.refused.append((400, 40060))
            raise _already_acknowledged()
        if late:
            interaction.refused.append((404, 10062))
            raise _unknown_interaction()
        body = self._body(record)
        kind = body.get("type")
        data: JSON = body.get("data") or {}
        allowed = {
            APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
            APPLICATION_COMMAND_AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
            MESSAGE_COMPONENT: {
                CHANNEL_MESSAGE,
                DEFERRED_CHANNEL_MESSAGE,
                DEFERRED_UPDATE_MESSAGE,
                UPDATE_MESSAGE,
                MODAL,
            },
        }.get(interaction.type, set())
        try:
            if kind not in allowed:
                raise _invalid_form(
                    {"type": _error_leaf("INTERACTION_CALLBACK_TYPE_INVALID", str(kind))}
                )
            resource = self._callback_resource(interaction, kind, data, record.files)
        except DiscordError as exc:
            interaction.refused.append((exc.status, exc.code))
            raise

        # Recorded before the MESSAGE_CREATE goes out, so a test woken by it sees the callback.
        interaction.callback_type = kind
        interaction.callback = body
        interaction.callback_files = record.files
        interaction.latency = received - interaction.dispatched_at
        interaction.with_response = _truthy(record.query.get("with_response"))
        interaction._acked.set()

        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE) and resource is not None:
            ephemeral = bool(resource["flags"] & EPHEMERAL)
            await self._store_and_dispatch(
                resource, visible_to=interaction.user_id if ephemeral else None
            )
        elif (
            kind == UPDATE_MESSAGE
            and resource is not None
            and int(resource["id"]) not in self.visible_to
        ):
            await self._dispatch_message("MESSAGE_UPDATE", resource)

        if not interaction.with_response:
            return _no_content()
        answer: JSON = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "activity_instance_id": None,
                "response_message_id": None,
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(
                    resource is not None and resource["flags"] & EPHEMERAL
                ),
            }
        }
        if resource is not None:
            answer["interaction"]["response_message_id"] = resource["id"]
            answer["resource"] = {"type": kind, "message": resource}
        return json_response(answer)

    def _callback_resource(
        self, interaction: Interaction, kind: int, data: JSON, files: list[UploadedFile]
    ) -> JSON | None:
        """The message a callback creates or updates (not stored yet), if any."""
        channel = self.channels[interaction.channel_id]
        resource: JSON | None = None
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0) & EPHEMERAL
            if kind == DEFERRED_CHANNEL_MESSAGE:
                message = self._new_message(
                    channel,
                    {"flags": data.get("flags")},
                    [],
                    kind=self._reply_kind(interaction),
                    extra_flags=flags | LOADING,
                    interaction=interaction,
                )
            else:
                message = self._new_message(
                    channel,
                    data,
                    files,
                    kind=self._reply_kind(interaction),
                    extra_flags=flags,
                    interaction=interaction,
                )
            interaction.original = message
            resource = message
        elif kind == UPDATE_MESSAGE:
            assert interaction.message is not None
            target = self._by_id.get(int(interaction.message["id"]))
            if target is None:
                raise _unknown_message()
            self._apply_edit(target, data, files)
            interaction.original = target
            resource = target
        elif kind == DEFERRED_UPDATE_MESSAGE:
            assert interaction.message is not None
            interaction.original = self._by_id.get(int(interaction.message["id"]))
        return resource

    def _reply_kind(self, interaction: Interaction) -> int:
        # CHAT_INPUT_COMMAND (20) for answers to slash commands, DEFAULT otherwise.
        return 20 if interaction.type == APPLICATION_COMMAND else 0

    def _webhook_interaction(self, app: str, token: str) -> Interaction:
        interaction = self._interactions_by_token.get(token)
        if int(app) != APPLICATION_ID or interaction is None:
            raise _unknown_webhook()
        # The interaction webhook only exists once the interaction was acknowledged.
        if interaction.callback_type is None:
            raise _unknown_webhook()
        return interaction

    def _webhook_target(self, interaction: Interaction, mid: str) -> JSON:
        if mid == "@original":
            if interaction.original is None or int(interaction.original["id"]) not in self._by_id:
                raise _unknown_message()
            return interaction.original
        for message in interaction.followups:
            if message["id"] == mid and int(mid) in self._by_id:
                return message
        raise _unknown_message()

    async def _followup(self, record: Request, app: str, token: str) -> web.StreamResponse:
        interaction = self._webhook_interaction(app, token)
        body = self._body(record)
        original = interaction.original
        if (
            interaction.callback_type == DEFERRED_CHANNEL_MESSAGE
            and original is not None
            and original["flags"] & LOADING
            and int(original["id"]) in self._by_id
        ):
            # The first follow-up after "thinking" fills that message, ephemeral or not
            # as the defer said, whatever its own flags.
            self._apply_edit(
                original, {k: v for k, v in body.items() if k != "flags"}, record.files
            )
            message = original
            interaction.followups.append(message)
            if int(message["id"]) not in self.visible_to:
                await self._dispatch_message("MESSAGE_UPDATE", message)
        else:
            flags = int(body.get("flags") or 0)
            channel = self.channels[interaction.channel_id]
            message = self._new_message(
                channel,
                body,
                record.files,
                kind=self._reply_kind(interaction),
                extra_flags=flags & EPHEMERAL,
                interaction=interaction,
            )
            interaction.followups.append(message)
            await self._store_and_dispatch(
                message, visible_to=interaction.user_id if flags & EPHEMERAL else None
            )
        if not _truthy(record.query.get("wait")):
            return _no_content()
        return json_response(message)

    async def _get_webhook_message(
        self, record: Request, app: str, token: str, mid: str
    ) -> web.StreamResponse:
        interaction = self._webhook_interaction(app, token)
        return json_response(self._webhook_target(interaction, mid))

    async def _edit_webhook_message(
        self, record: Request, app: str, token: str, mid: str
    ) -> web.StreamResponse:
        interaction = self._webhook_interaction(app, token)
        message = self._webhook_target(interaction, mid)
        body = self._body(record)
        self._apply_edit(message, body, record.files)
        interaction.edits.append(body)
        if int(message["id"]) not in self.visible_to:
            await self._dispatch_message("MESSAGE_UPDATE", message)
        return json_response(message)

    async def _delete_webhook_message(
        self, record: Request, app: str, token: str, mid: str
    ) -> web.StreamResponse:
        interaction = self._webhook_interaction(app, token)
        message = self._webhook_target(interaction, mid)
        interaction.deleted.append(int(message["id"]))
        await self._remove(message)
        return _no_content()

    # -- objects

    def _snowflake(self) -> int:
        now_ms = int(time.time() * 1000)
        value = ((now_ms - DISCORD_EPOCH_MS) << 22) | (next(self._increment) & 0xFFF)
        value = max(value, self._last_snowflake + 1)
        self._last_snowflake = value
        return value

    def _user(self, user_id: int) -> FakeUser:
        user = self.users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}: add it with FakeDiscord.add_user")
        return user

    def _member(
        self, user_id: int, role_ids: Iterable[int] | None = None, *, with_user: bool = True
    ) -> JSON:
        user = self._user(user_id)
        member: JSON = {
            "roles": [str(r) for r in (user.roles if role_ids is None else role_ids)],
            "joined_at": "2025-01-01T00:00:00+00:00",
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "unusual_dm_activity_until": None,
        }
        if with_user:
            member["user"] = user.to_discord()
        return member

    def _guild_object(self) -> JSON:
        return {
            "id": str(GUILD),
            "name": "Howl's Castle",
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": list(self.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": str(GENERAL),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_members": 500000,
            "max_presences": None,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "nsfw": False,
            "incidents_data": None,
        }

    def _guild_create(self, intents: int) -> JSON:
        # Without GUILD_PRESENCES Discord sends the bot's own member (and voice members) only:
        # a client with GUILD_MEMBERS then asks for the rest with op 8.
        member_ids = list(self.users) if intents & GUILD_PRESENCES else [BOT_ID]
        return {
            **self._guild_object(),
            "unavailable": False,
            "joined_at": "2025-01-01T00:00:00+00:00",
            "large": False,
            "lazy": True,
            "member_count": len(self.users),
            "channels": [
                {k: v for k, v in c.items() if k != "guild_id"}
                for c in self.channels.values()
                if c["type"] != 1
            ],
            "threads": [],
            "members": [self._member(uid) for uid in member_ids],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "application_command_counts": {},
            "hub_type": None,
            "latest_onboarding_question_id": None,
            "home_header": None,
        }

    def _partial_channel(
        self, channel_id: int, user_id: int, role_ids: Iterable[int] | None
    ) -> JSON:
        channel = dict(self.channels[channel_id])
        if channel["type"] != 1:
            channel["permissions"] = str(self.permissions(user_id, channel_id, role_ids))
        return channel

    # -- gateway

    def _newest_live_session(self) -> _Session | None:
        for session in reversed(self._sessions):
            live = session.connection is not None and not session.connection.ws.closed
            if live and not session.ended:
                return session
        return None

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(ws, dict(request.query))
        self.connections.append(conn)
        await self._send(
            conn,
            {
                "op": 10,
                "d": {"heartbeat_interval": self.heartbeat_interval, "_trace": ["fake-gateway"]},
                "s": None,
                "t": None,
            },
        )
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await self._on_frame(conn, frame.data)
                elif frame.type == WSMsgType.BINARY:
                    await self._close(conn, 4002, "Error while decoding payload.")
        except Exception as exc:
            self.errors.append(exc)
            raise
        finally:
            session = conn.session
            if session is not None and session.connection is conn:
                session.connection = None
                # A client closing with 1000/1001 ends its session; any other code keeps it
                # resumable (discord.py closes with 4000 before it resumes).
                if not conn.closed_by_fake and ws.close_code in (1000, 1001):
                    session.ended = True
        return ws

    async def _send(self, conn: GatewayConnection, payload: JSON) -> None:
        if conn.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(json.dumps(payload))

    async def _close(self, conn: GatewayConnection, code: int, reason: str) -> None:
        conn.closed_by_fake = True
        if conn.session is not None and code in _SESSION_ENDING_CLOSES:
            conn.session.ended = True
        await conn.ws.close(code=code, message=reason.encode())

    async def _on_frame(self, conn: GatewayConnection, data: str) -> None:
        try:
            frame = json.loads(data)
        except json.JSONDecodeError:
            await self._close(conn, 4002, "Error while decoding payload.")
            return
        conn.received.append(frame)
        op = frame.get("op")
        d = frame.get("d")
        if op == 1:
            self.heartbeats += 1
            if self.ack_heartbeats:
                await self._send(conn, {"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif conn.session is None:
            await self._close(conn, 4003, "Not authenticated.")
        elif op == 3:
            self.presence_updates.append(d or {})
        elif op == 8:
            await self._request_members(conn.session, d or {})
        elif op == 4:
            pass  # voice state: nothing to join here
        else:
            await self._close(conn, 4001, "Unknown opcode.")

    async def _identify(self, conn: GatewayConnection, d: JSON) -> None:
        if conn.session is not None:
            await self._close(conn, 4005, "Already authenticated.")
            return
        if d.get("token") != self.token:
            await self._close(conn, 4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int) or intents & ~KNOWN_INTENTS:
            await self._close(conn, 4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.granted_intents:
            await self._close(conn, 4014, "Disallowed intent(s).")
            return
        shard = d.get("shard")
        session = _Session(
            id=secrets.token_hex(16),
            intents=intents,
            shard=(int(shard[0]), int(shard[1])) if shard else None,
            connection=conn,
        )
        conn.session = session
        self._sessions.append(session)
        in_shard = session.shard is None or (GUILD >> 22) % session.shard[1] == session.shard[0]
        me = BOT_USER.to_discord()
        me.update(verified=True, mfa_enabled=False, flags=0, email=None)
        ready: JSON = {
            "v": 10,
            "user": me,
            "user_settings": {},
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guilds": [{"id": str(GUILD), "unavailable": True}] if in_shard else [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APPLICATION_ID), "flags": self.application()["flags"]},
            "auth": {},
            "_trace": ["fake-gateway"],
        }
        if session.shard is not None:
            ready["shard"] = list(session.shard)
        await self._dispatch("READY", ready, sessions=[session])
        if in_shard:
            await self._dispatch("GUILD_CREATE", self._guild_create(intents), sessions=[session])
        self.identifications += 1

    async def _resume(self, conn: GatewayConnection, d: JSON) -> None:
        if d.get("token") != self.token:
            await self._close(conn, 4004, "Authentication failed.")
            return
        session = next((s for s in self._sessions if s.id == d.get("session_id")), None)
        if session is None or session.ended:
            # Not resumable: the client must IDENTIFY anew.
            await self._send(conn, {"op": 9, "d": False, "s": None, "t": None})
            return
        if session.connection is not None and session.connection is not conn:
            old = session.connection
            old.closed_by_fake = True
            await old.ws.close(code=4000, message=b"session resumed elsewhere")
        session.connection = conn
        conn.session = session
        last = int(d.get("seq") or 0)
        for frame in session.history:
            if frame["s"] > last:
                await self._send(conn, frame)
        await self._dispatch("RESUMED", {"_trace": ["fake-gateway"]}, sessions=[session])
        self.resumes += 1

    async def _request_members(self, session: _Session, d: JSON) -> None:
        query = str(d.get("query") or "")
        raw_ids = d.get("user_ids") or []
        wanted = {int(u) for u in ([raw_ids] if isinstance(raw_ids, int | str) else raw_ids)}
        limit = int(d.get("limit") or 0)
        ids = [
            uid
            for uid, user in self.users.items()
            if (not wanted or uid in wanted) and user.username.startswith(query)
        ]
        if limit:
            ids = ids[:limit]
        chunk: JSON = {
            "guild_id": str(GUILD),
            "members": [self._member(uid) for uid in ids],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted - set(ids)],
        }
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        await self._dispatch("GUILD_MEMBERS_CHUNK", chunk, sessions=[session])

    async def _dispatch(
        self,
        event: str,
        data: JSON,
        *,
        sessions: Iterable[_Session] | None = None,
        needs: int | None = None,
        shape: Callable[[_Session, JSON], JSON] | None = None,
    ) -> dict[str, JSON]:
        """Send a dispatch to sessions (default: every session not ended).

        A session whose connection dropped keeps the frame for its RESUME. Returns what
        each session got, by session id.
        """
        sent: dict[str, JSON] = {}
        targets = [s for s in self._sessions if not s.ended] if sessions is None else sessions
        for session in targets:
            if needs is not None and not session.intents & needs:
                continue
            payload = shape(session, data) if shape is not None else data
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": payload}
            session.history.append(frame)
            sent[session.id] = payload
            if session.connection is not None:
                await self._send(session.connection, frame)
        return sent

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send any dispatch event to every session, for what the helpers do not cover."""
        await self._dispatch(event, data)

    def _for_session(
        self, session: _Session, message: JSON, roles: list[int] | None = None
    ) -> JSON:
        """The message as a session sees it: blanked without the Message Content intent."""
        out = copy.deepcopy(message)
        if "guild_id" in out and int(out["author"]["id"]) in self.users:
            out["member"] = self._member(int(out["author"]["id"]), roles, with_user=False)
        if session.intents & MESSAGE_CONTENT:
            return out
        is_dm = "guild_id" not in out
        mentions_bot = any(int(m["id"]) == BOT_ID for m in out["mentions"])
        if is_dm or mentions_bot or int(out["author"]["id"]) == BOT_ID:
            return out
        out.update(content="", embeds=[], attachments=[], components=[])
        out.pop("poll", None)
        return out

    async def _dispatch_message(
        self, event: str, message: JSON, roles: list[int] | None = None
    ) -> dict[str, JSON]:
        needs = GUILD_MESSAGES if "guild_id" in message else DIRECT_MESSAGES
        return await self._dispatch(
            event, message, needs=needs, shape=lambda s, m: self._for_session(s, m, roles)
        )

    async def _live_session(self, timeout: float) -> _Session:  # noqa: ASYNC109
        await self.wait_ready(count=1, timeout=timeout)
        session = self._newest_live_session()
        assert session is not None
        return session

    async def disconnect_all(self, code: int = 4000, reason: str = "dropped by the test") -> None:
        """Close every live gateway connection; codes other than 1000/1001/4004/4007/4009/
        4010-4014 leave the session resumable."""
        for conn in self.live_connections:
            await self._close(conn, code, reason)

    async def request_reconnect(self) -> None:
        """Op 7: the client closes and RESUMEs."""
        for conn in self.live_connections:
            await self._send(conn, {"op": 7, "d": None, "s": None, "t": None})

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Op 9: with ``resumable=False`` the client IDENTIFYs anew."""
        for conn in self.live_connections:
            if conn.session is not None and not resumable:
                conn.session.ended = True
            await self._send(conn, {"op": 9, "d": resumable, "s": None, "t": None})

    # -- pushes: what users do

    async def push_message(
        self,
        channel_id: int,
        author_id: int,
        content: str,
        *,
        mentions_bot: bool = False,
        mention_ids: Iterable[int] = (),
        role_ids: Iterable[int] | None = None,
        embeds: Iterable[JSON] = (),
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JSON:
        """A user's message: stored in full, dispatched as MESSAGE_CREATE.

        Write ``<@900>`` in ``content`` as a user would; ``mentions_bot`` (or the mention in
        the content) puts the bot in ``mentions``. ``role_ids`` defaults to the user's roles.
        Returns the payload the newest session got (blanked without Message Content).
        """
        session = await self._live_session(timeout)
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        user = self._user(author_id)
        message_id = self._snowflake()
        message: JSON = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": user.to_discord(),
            "content": content,
            "timestamp": _now_iso(snowflake_time_ms(message_id)),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": list(embeds),
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "reactions": [],
        }
        if channel["type"] != 1:
            message["guild_id"] = str(GUILD)
        self._resolve_mentions(message, None)
        known = {int(m["id"]) for m in message["mentions"]}
        for uid in [*mention_ids, *([BOT_ID] if mentions_bot else [])]:
            if uid not in known:
                known.add(uid)
                message["mentions"].append(self._user(uid).to_discord())
        roles = None if role_ids is None else list(role_ids)
        sent = await self._dispatch_message("MESSAGE_CREATE", message, roles)
        self._messages.setdefault(channel_id, []).append(message)
        self._by_id[message_id] = message
        channel["last_message_id"] = message["id"]
        return sent.get(session.id, message)

    def _new_interaction(
        self,
        kind: int,
        data: JSON,
        user_id: int,
        channel_id: int,
        role_ids: Iterable[int] | None,
        message: JSON | None = None,
    ) -> Interaction:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"unknown channel {channel_id}")
        roles = None if role_ids is None else list(role_ids)
        interaction_id = self._snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(APPLICATION_ID),
            "type": kind,
            "data": data,
            "channel_id": str(channel_id),
            "channel": self._partial_channel(channel_id, user_id, roles),
            "token": token,
            "version": 1,
            "app_permissions": str(self.permissions(BOT_ID, channel_id)),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if channel["type"] == 1:
            payload["user"] = self._user(user_id).to_discord()
            payload["context"] = 1  # BOT_DM
            # A guild-installed app answering in its DM: "0" stands for no guild.
            payload["authorizing_integration_owners"] = {"0": "0"}
        else:
            member = self._member(user_id, roles)
            member["permissions"] = str(self.permissions(user_id, channel_id, roles))
            payload.update(
                guild_id=str(GUILD),
                guild={"id": str(GUILD), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=member,
                context=0,
                authorizing_integration_owners={"0": str(GUILD)},
            )
        if message is not None:
            payload["message"] = message
        record = Interaction(
            id=interaction_id,
            token=token,
            type=kind,
            user_id=user_id,
            channel_id=channel_id,
            payload=payload,
            dispatched_at=0.0,
            message=message,
        )
        self.interactions.append(record)
        self._interactions_by_token[token] = record
        return record

    async def _send_interaction(
        self,
        record: Interaction,
        timeout: float,  # noqa: ASYNC109
    ) -> Interaction:
        session = await self._live_session(timeout)
        record.dispatched_at = time.monotonic()
        await self._dispatch("INTERACTION_CREATE", record.payload, sessions=[session])
        return record

    async def push_slash(
        self,
        text: str | None,
        *,
        user_id: int,
        channel_id: int = GENERAL,
        role_ids: Iterable[int] | None = None,
        name: str = "calcifer",
        option: str = "command",
        typing: bool = False,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Interaction:
        """A user running ``/name option:text`` (no options when ``text`` is None).

        With ``typing`` the option is still being typed: an autocomplete interaction,
        answered with callback type 8 and ``data.choices``.

        The command's id and scope come from the last sync (guild first, then global);
        ``role_ids`` defaults to the user's roles.
        """
        data: JSON = {"name": name, "type": 1}
        guild_command = next((c for c in self.commands.get(GUILD, []) if c["name"] == name), None)
        global_command = next((c for c in self.commands.get(None, []) if c["name"] == name), None)
        in_dm = self.channels.get(channel_id, {}).get("type") == 1
        if guild_command is not None and not in_dm:
            data["id"] = guild_command["id"]
            data["guild_id"] = str(GUILD)
        elif global_command is not None:
            data["id"] = global_command["id"]
        else:
            data["id"] = str(self._snowflake())
        if text is not None:
            data["options"] = [{"name": option, "type": 3, "value": text}]
        kind = APPLICATION_COMMAND
        if typing:  # the user is still typing the option: Discord asks for suggestions
            data["options"][0]["focused"] = True
            kind = APPLICATION_COMMAND_AUTOCOMPLETE
        record = self._new_interaction(kind, data, user_id, channel_id, role_ids)
        return await self._send_interaction(record, timeout)

    async def push_button(
        self,
        custom_id: str,
        message_id: int | str,
        *,
        user_id: int,
        channel_id: int | None = None,
        role_ids: Iterable[int] | None = None,
        component_type: int = 2,
        values: Iterable[str] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Interaction:
        """A user clicking a component of a stored message (``values`` for a select)."""
        message = self._by_id.get(int(message_id))
        if message is None:
            raise ValueError(f"unknown message {message_id}")
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        cid = int(message["channel_id"]) if channel_id is None else channel_id
        record = self._new_interaction(
            MESSAGE_COMPONENT, data, user_id, cid, role_ids, copy.deepcopy(message)
        )
        return await self._send_interaction(record, timeout)


def _role(
    role_id: int, name: str, position: int, permissions: int, bot_id: int | None = None
) -> JSON:
    role: JSON = {
        "id": str(role_id),
        "name": name,
        "description": None,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": bot_id is not None,
        "mentionable": False,
        "flags": 0,
    }
    if bot_id is not None:
        role["tags"] = {"bot_id": str(bot_id)}
    return role


def _text_channel(
    channel_id: int,
    name: str,
    position: int,
    topic: str | None,
    overwrites: list[JSON] | None = None,
) -> JSON:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(GUILD),
        "name": name,
        "position": position,
        "parent_id": None,
        "topic": topic,
        "nsfw": False,
        "rate_limit_per_user": 0,
        "permission_overwrites": overwrites or [],
        "last_message_id": None,
        "flags": 0,
        "icon_emoji": None,
        "theme_color": None,
    }


def _parse_emoji(emoji: str) -> tuple[str, str | None]:
    # Unicode as is; custom emoji as "name:id", ":name:id" or "a:name:id" (animated).
    parts = emoji.split(":")
    if len(parts) == 1:
        return emoji, None
    return parts[-2], parts[-1]


def _normalize_embed(embed: JSON) -> JSON:
    out = dict(embed)
    out.setdefault("type", "rich")
    return out


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status}: {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status}: Error"


async def _read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """The JSON body, or a multipart body's payload_json and files[n] parts."""
    if not request.body_exists:
        return None, []
    if request.content_type == "multipart/form-data":
        payload: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                try:
                    payload = json.loads(await part.text())
                except json.JSONDecodeError:
                    raise DiscordError(
                        400, 50109, "The request body contains invalid JSON."
                    ) from None
            elif part.name and part.name.startswith("files["):
                files.append(
                    UploadedFile(
                        field=part.name,
                        filename=part.filename or part.name,
                        content=bytes(await part.read(decode=False)),
                        content_type=part.headers.get("Content-Type"),
                    )
                )
        return payload, files
    text = await request.text()
    if not text:
        return None, []
    try:
        return json.loads(text), []
    except json.JSONDecodeError:
        raise DiscordError(400, 50109, "The request body contains invalid JSON.") from None


@contextlib.asynccontextmanager
async def running_fake_discord(**options: Any) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(**options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


__all__ = [
    "ALERTS",
    "ALICE",
    "APPLICATION_ID",
    "BOB",
    "BOT_ID",
    "BOT_ROLE",
    "BOT_TOKEN",
    "BOT_USER",
    "DEFAULT_INTENTS",
    "DEFAULT_USERS",
    "EPHEMERAL",
    "EVERYONE_ROLE",
    "GENERAL",
    "GUILD",
    "LOADING",
    "MESSAGE_CONTENT",
    "OPS_ROLE",
    "PRIVATE",
    "PRIVILEGED_INTENTS",
    "VERA",
    "DiscordError",
    "FakeDiscord",
    "FakeUser",
    "GatewayConnection",
    "Interaction",
    "Request",
    "UploadedFile",
    "json_response",
    "running_fake_discord",
]
