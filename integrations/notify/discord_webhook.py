"""Discord webhooks: embeds and files to the channel a webhook URL names, and edits.

Posted with our own HTTP client, not discord.py: ``discord.Webhook.from_url``
accepts only discord.com URLs, and destinations may be relays or test servers.
Messages are posted with ``?wait=true`` so Discord answers with the message,
whose id later edits (op "update") need. Webhooks cannot reply in a thread of
a channel message, so op "reply" posts a new message.

Discord's errors are JSON: ``{"code": 10015, "message": "Unknown Webhook"}``,
and a 429's ``retry_after`` is in seconds, with a fraction.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
from pydantic import Field, SecretStr, field_validator
from yarl import URL

from adapters import discord_embeds
from adapters.discord_embeds import DiscordMessage
from calcifer_bot import http
from calcifer_bot.errors import IntegrationError
from integrations.base import Connectivity, Reachability
from integrations.notify.base import Message, Provider, ProviderConfig, Timeout
from integrations.notify.webhook import (
    SECRET_INPUT,
    check_url,
    failure,
    host_of,
    scrub,
)

# Codes that no retry can change: the webhook or the message is gone, the token
# is wrong, or Discord refused what we built.
PERMANENT_CODES = {
    10015: "Unknown Webhook",
    10008: "Unknown Message",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
}
API_VERSION = "v10"
DISCORD_HOSTS = frozenset(
    {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}
)
_SNOWFLAKE = re.compile(r"[0-9]{1,20}")
# Discord refuses a webhook name with these in it (50035), on every message.
_RESERVED_NAMES = ("discord", "clyde")


def api_url(raw: str) -> URL:
    """The webhook URL, pinned to a current API version on Discord's own hosts.

    The URL Discord's settings hand out (``/api/webhooks/…``) has no version and
    reaches the deprecated default, v6, whose 429s give ``retry_after`` in
    milliseconds: read as seconds, a 1.5 s wait would become 25 minutes.
    """
    url = URL(raw)
    if url.host in DISCORD_HOSTS and url.path.startswith("/api/webhooks/"):
        path = "/api/" + API_VERSION + url.path.removeprefix("/api")
        return url.with_path(path).with_query(url.query)
    return url


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message_id(body: bytes) -> str | None:
    id_ = _json_object(body).get("id")
    if isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool)):
        return str(id_)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _first_form_error(errors: Any, path: tuple[str, ...] = ()) -> str | None:
    """``embeds.0.description: Must be 4096 or fewer in length.`` from a 50035's errors."""
    if not isinstance(errors, dict):
        return None
    found = errors.get("_errors")
    if isinstance(found, list) and found and isinstance(found[0], dict):
        where = ".".join(path)
        message = str(found[0].get("message", "invalid"))
        return f"{where}: {message}" if where else message
    for key, value in errors.items():
        inner = _first_form_error(value, (*path, str(key)))
        if inner is not None:
            return inner
    return None


def _safe_filename(name: str) -> str:
    # The filename goes into a quoted multipart header as it is (Discord wants
    # it verbatim for attachment:// links): only what would break the quoting goes.
    return re.sub(r'["\\\r\n]', "_", name) or "file"


class DiscordWebhook(Provider):
    """Posts a reply as Discord messages through one webhook URL, and edits them."""

    type = "discord-webhook"
    title = "Discord webhook"
    default_rate = "30/1m"  # Discord's limit for one webhook: 30 messages a minute
    edits = True

    class Config(ProviderConfig):
        model_config = SECRET_INPUT

        url: SecretStr
        # Overrides of the name and avatar set on the webhook in Discord.
        username: str | None = Field(default=None, min_length=1, max_length=80)
        avatar_url: str | None = None
        timeout: Timeout = timedelta(seconds=10)

        _check_url = field_validator("url")(check_url)

        @field_validator("username")
        @classmethod
        def _check_username(cls, value: str | None) -> str | None:
            if value is not None and any(w in value.lower() for w in _RESERVED_NAMES):
                raise ValueError("Discord refuses webhook names containing 'discord' or 'clyde'")
            return value

        @field_validator("avatar_url")
        @classmethod
        def _check_avatar(cls, value: str | None) -> str | None:
            if value is not None:
                check_url(SecretStr(value))
            return value

    config: Config

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)
        self.config = config
        self._url = api_url(config.url.get_secret_value())

    @property
    def _who(self) -> str:
        return f"Discord webhook {self.name}"

    async def send(self, message: Message) -> str | None:
        # Buttons would show but could never run: a webhook's messages have no
        # application behind them to receive the interaction.
        rendered = discord_embeds.render(replace(message.reply, buttons=()))
        if message.op == "update" and message.target is not None:
            if not _SNOWFLAKE.fullmatch(message.target):
                raise IntegrationError(
                    f"{self._who}: cannot edit {message.target!r}, not a Discord message id",
                    permanent=True,
                )
            # One message is edited; continuations of a longer reply have nowhere to go.
            url = self._url / "messages" / message.target
            await self._request("PATCH", url.with_query(self._url.query), rendered.first, edit=True)
            return message.target
        first: str | None = None
        for i, part in enumerate(rendered.messages):
            answer = await self._request(
                "POST", self._url.update_query(wait="true"), part, edit=False
            )
            if i == 0:
                first = _message_id(answer.body)
        return first

    def _payload(self, message: DiscordMessage, *, edit: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "content": message.content,
            "embeds": list(message.embeds),
            # Alert text quotes hosts, users and services: none of it may ping anyone.
            "allowed_mentions": {"parse": []},
        }
        if not edit:  # Discord takes the name and avatar only when posting
            if self.config.username is not None:
                payload["username"] = self.config.username
            if self.config.avatar_url is not None:
                payload["avatar_url"] = self.config.avatar_url
        if message.files or edit:
            # On an edit the list is what the message keeps: an old chart goes.
            payload["attachments"] = [
                {"id": i, "filename": _safe_filename(f.filename)}
                for i, f in enumerate(message.files)
            ]
        return payload

    async def _request(
        self, method: str, url: URL, message: DiscordMessage, *, edit: bool
    ) -> http.Response:
        payload = self._payload(message, edit=edit)
        body: dict[str, Any]
        if message.files:
            # A fresh form on every call: a sent FormData cannot be sent again.
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("payload_json", json.dumps(payload), content_type="application/json")
            for i, f in enumerate(message.files):
                form.add_field(
                    f"files[{i}]",
                    f.content,
                    filename=_safe_filename(f.filename),
                    content_type=f.content_type,
                )
            body = {"data": form}
        else:
            body = {"json": payload}
        try:
            return await http.request(
                method, str(url), timeout_s=self.config.timeout.total_seconds(), **body
            )
        except http.HTTPStatusError as exc:
            raise self._status_failure(exc) from None
        except IntegrationError as exc:
            raise failure(self._who, exc, self.config.url) from None

    def _status_failure(self, exc: http.HTTPStatusError) -> IntegrationError:
        data = _json_object(exc.body)
        if exc.status == 429:
            # The body's value has the fraction the Retry-After header rounds away.
            retry = _number(data.get("retry_after"))
            retry = exc.retry_after if retry is None else retry
            scope = " (global)" if data.get("global") is True else ""
            wait = f"; retry in {retry:g} s" if retry is not None else ""
            return IntegrationError(
                f"{self._who}: rate limited by {host_of(self.config.url)}{scope}{wait}",
                permanent=False,
                retry_after=retry,
            )
        code, text = data.get("code"), data.get("message")
        if isinstance(code, int) and not isinstance(code, bool) and isinstance(text, str):
            detail = f"{text} ({code})"
            if code == 50035 and (where := _first_form_error(data.get("errors"))):
                detail += f": {where}"
            return IntegrationError(
                scrub(f"{self._who}: {detail}", self.config.url),
                permanent=exc.permanent or code in PERMANENT_CODES,
                retry_after=exc.retry_after,
            )
        # Not Discord's JSON: a proxy's or Cloudflare's page, not worth quoting.
        detail = f"{host_of(self.config.url)} answered HTTP {exc.status}"
        return failure(self._who, exc, self.config.url, detail)

    async def check(self) -> Connectivity:
        # GET on a webhook URL returns the webhook itself and posts nothing.
        try:
            answer = await http.request(
                "GET", str(self._url), timeout_s=self.config.timeout.total_seconds()
            )
        except http.HTTPStatusError as exc:
            if exc.status in (401, 403, 404):
                return Connectivity(
                    Reachability.INVALID_AUTH,
                    "Discord says the webhook does not exist (revoked or mistyped)",
                )
            return Connectivity(Reachability.CANNOT_CONNECT, self._status_failure(exc).message)
        except IntegrationError as exc:
            return Connectivity(Reachability.CANNOT_CONNECT, scrub(exc.message, self.config.url))
        hook = _json_object(answer.body)
        name, channel = hook.get("name"), hook.get("channel_id")
        if not isinstance(channel, str | int):
            return Connectivity(
                Reachability.CANNOT_CONNECT,
                f"{host_of(self.config.url)} did not answer with a Discord webhook",
            )
        return Connectivity(Reachability.OK, f"posts as {name} in channel {channel}")

    def describe(self) -> str:
        return f"{self.title} on {host_of(self.config.url)}"
