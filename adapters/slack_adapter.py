"""The Slack adapter: slack-bolt's AsyncApp in Calcifer's event loop.

A thin translator: a Slack event (slash command, mention, DM, button press)
becomes one :class:`~calcifer_bot.reply.Command` and one ``core.dispatch``;
the Reply goes back as Block Kit (:mod:`adapters.slack_blocks`). Alerts come
from the outbox through :meth:`SlackAdapter.deliver`.

Transports: Socket Mode when ``SLACK_APP_TOKEN`` is set (no public URL needed),
and HTTP mode on ``POST /slack/events`` of Calcifer's own server when
``SLACK_SIGNING_SECRET`` is set (bolt verifies every signature; a bad or stale
one gets 401 and nothing runs).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack_blocks import DISMISS, Rendered, SlackMessage, render
from calcifer_bot import http
from calcifer_bot.config import SlackSettings
from calcifer_bot.core import Core
from calcifer_bot.errors import ConfigError, IntegrationError
from calcifer_bot.outbox import Delivery
from calcifer_bot.reply import Attachment, Command, MessageRef, Reply, Visibility
from integrations.base import Connectivity, Reachability

log = logging.getLogger(__name__)

PLATFORM = "slack"
SLASH_COMMAND = "/calcifer"
DEFAULT_API_URL = "https://slack.com/api/"
PEOPLE_TTL_S = 3600.0
# Codes after which sending the same message again cannot succeed.
PERMANENT = frozenset(
    {
        "channel_not_found",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "invalid_attachments",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_arguments",
    }
)
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})
# The marker in every message Calcifer posts from the outbox, so a retry after
# an uncertain attempt can tell whether the first one got through.
METADATA_EVENT = "calcifer_outbox"


class SlackError(IntegrationError):
    def __init__(
        self, message: str, *, code: str = "", permanent: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.code = code
        self.retry_after = retry_after


def translate(exc: Exception) -> SlackError:
    """slack_sdk's and aiohttp's exceptions, as one error the outbox understands."""
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
        retry_after = None
        if exc.response.status_code == 429:
            code = "ratelimited"
            value = exc.response.headers.get("Retry-After")  # aiohttp's: case-insensitive
            retry_after = float(value) if value and str(value).isdigit() else 30.0
        return SlackError(
            f"Slack refused the call: {code}",
            code=code,
            permanent=code in PERMANENT,
            retry_after=retry_after,
        )
    detail = (
        http.describe_client_error(exc) if isinstance(exc, aiohttp.ClientError) else "timed out"
    )
    return SlackError(f"cannot reach Slack: {detail}", permanent=False)


async def api(call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    """Every Web API call goes through here: library exceptions stop at this edge."""
    try:
        return await call
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
        raise translate(exc) from None


def api_base(url: str | None) -> str:
    # slack_sdk appends the method name to the base as a string.
    base = url or DEFAULT_API_URL
    return base if base.endswith("/") else base + "/"


def from_slack(text: str, bot_user: str | None = None) -> str:
    """Slack's markup in typed text back into what Calcifer's grammar expects."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", " ", text)
    text = re.sub(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>", r"slack:\1", text)
    text = re.sub(r"<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>", r"slack:\1", text)
    text = re.sub(r"<!(here|channel|everyone)(?:\|[^>]*)?>", r"@\1", text)
    text = re.sub(r"<([a-z][a-z0-9+.-]*:[^|>]+)(?:\|[^>]*)?>", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


class Pacer:
    """At most one message per ``interval`` seconds per channel, Slack's posting guidance."""

    def __init__(
        self,
        interval: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._next: dict[str, float] = {}

    async def wait(self, channel: str) -> None:
        now = self.clock()
        at = max(now, self._next.get(channel, now))
        self._next[channel] = at + self.interval
        if at > now:
            await self.sleep(at - now)


@dataclass(frozen=True, slots=True)
class Person:
    name: str | None
    email: str | None
    expires: float


@dataclass(slots=True)
class Answer:
    """Where a command's reply goes and how it got there."""

    channel: str
    user: str
    thread_ts: str | None = None  # answer in this thread (mentions)
    respond: AsyncRespond | None = None  # slash commands and buttons
    working_ts: str | None = None  # a "working…" message of ours to replace
    working_ephemeral: bool = False  # "working…" went through respond

    @property
    def direct(self) -> bool:
        return self.channel.startswith("D")  # in a DM there is nobody to hide a reply from


class SlackAdapter:
    platform = PLATFORM

    def __init__(
        self,
        core: Core,
        settings: SlackSettings,
        *,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set")
        if settings.app_token is None and settings.signing_secret is None:
            raise ConfigError(
                "SLACK_BOT_TOKEN is set, but neither SLACK_APP_TOKEN (Socket Mode) "
                "nor SLACK_SIGNING_SECRET (HTTP mode, POST /slack/events) is"
            )
        self.core = core
        self.settings = settings
        self.pacer = pacer or Pacer()
        self.clock = clock
        self.client = AsyncWebClient(
            token=settings.bot_token.get_secret_value(),
            base_url=api_base(settings.api_url),
            session=http.session(),
            timeout=15,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                # Honours Retry-After; a 429 that outlasts it goes back to the outbox.
                AsyncRateLimitErrorRetryHandler(max_retry_count=2),
            ],
            logger=log,
        )
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
        self.app = AsyncApp(client=self.client, signing_secret=secret, logger=log)
        self.app.command(SLASH_COMMAND)(self._on_command)
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.action(re.compile("^calcifer:"))(self._on_action)
        self.socket: AsyncSocketModeHandler | None = None
        self.bot_user: str | None = None
        self._people: dict[str, Person] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        if self.settings.signing_secret is not None:
            app.router.add_post("/slack/events", self._http)

    async def check_connectivity(self) -> Connectivity:
        """auth.test: the cheapest call that proves the bot token."""
        try:
            async with asyncio.timeout(10):
                auth = await api(self.client.auth_test())
        except TimeoutError:
            return Connectivity(Reachability.CANNOT_CONNECT, "Slack did not answer within 10 s")
        except SlackError as exc:
            if exc.code in AUTH_ERRORS:
                refused = f"SLACK_BOT_TOKEN was refused by Slack ({exc.code})"
                return Connectivity(Reachability.INVALID_AUTH, refused)
            return Connectivity(Reachability.CANNOT_CONNECT, exc.message)
        self.bot_user = auth.get("user_id")
        return Connectivity(Reachability.OK, f"as {auth.get('user')} in {auth.get('team')}")

    async def start(self) -> None:
        """Check the bot token, then connect Socket Mode in the background.

        A refused token is fatal; an unreachable Slack is not: monitoring goes
        on, alerts wait in the outbox, and the connection is retried.
        """
        found = await self.check_connectivity()
        if found.state is Reachability.INVALID_AUTH:
            raise ConfigError(found.detail)
        if found:
            log.info("connected to Slack %s", found.detail)
        else:
            log.warning("%s; alerts wait in the outbox until it answers", found.detail)
        if self.settings.app_token is not None:
            self.socket = AsyncSocketModeHandler(
                self.app, self.settings.app_token.get_secret_value(), logger=log
            )
            self._spawn(self._connect(self.socket))

    async def _connect(self, socket: AsyncSocketModeHandler) -> None:
        delay = 1.0
        while True:
            try:
                await socket.connect_async()
                log.info("Slack Socket Mode connected")
                return
            except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("Slack Socket Mode: %s; retrying in %.0f s", translate(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.socket is not None:
            await self.socket.close_async()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _http(self, request: web.Request) -> web.Response:
        answer = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(answer)

    # -- incoming -----------------------------------------------------------

    async def _on_command(self, ack: Any, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()  # first, always: Slack gives up after 3 s
        answer = Answer(command["channel_id"], command["user_id"], respond=respond)
        await self._run(from_slack(command.get("text", "")), answer)

    async def _on_mention(self, event: dict[str, Any]) -> None:
        answer = Answer(event["channel"], event["user"], event.get("thread_ts") or event["ts"])
        await self._run(from_slack(event.get("text", ""), self.bot_user), answer)

    async def _on_message(self, event: dict[str, Any]) -> None:
        # Only direct messages: in channels Calcifer answers when mentioned.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        answer = Answer(event["channel"], event["user"], event.get("thread_ts"))
        await self._run(from_slack(event.get("text", ""), self.bot_user), answer)

    async def _on_action(self, ack: Any, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = body["actions"][0]
        container = body.get("container", {})
        ephemeral = bool(container.get("is_ephemeral"))
        if action.get("action_id", "").startswith(DISMISS):
            if ephemeral:
                await respond(delete_original=True)
            return
        channel = container.get("channel_id") or body["channel"]["id"]
        answer = Answer(channel, body["user"]["id"], respond=respond)
        reply = await self._dispatch(action.get("value", ""), answer)
        if ephemeral and _in_channel(reply, answer):  # a confirmed action: posted for all
            await respond(delete_original=True)
            await self._publish(reply, answer)
        elif ephemeral:  # a confirmation: its answer takes its place
            await respond(**render(reply).first.kwargs(), replace_original=True)
        else:
            # On an alert the engine edits the message itself (acknowledged by…);
            # the presser alone gets the command's answer.
            first = render(reply).first
            await respond(**first.kwargs(), response_type="ephemeral", replace_original=False)

    async def _run(self, text: str, answer: Answer) -> None:
        spec = self.core.lookup(text)
        if spec is not None and spec.slow:
            await self._working(f"Working on `{text.strip()}`…", answer)
        reply = await self._dispatch(text, answer)
        await self._publish(reply, answer)

    async def _dispatch(self, text: str, answer: Answer) -> Reply:
        person = await self.person(answer.user)
        command = Command(
            PLATFORM, answer.user, answer.channel, text, person.name, user_email=person.email
        )
        last = self.clock()  # the "working…" note itself was just shown

        async def progress(note: str) -> None:
            nonlocal last
            if answer.working_ts is None and not answer.working_ephemeral:
                return
            if self.clock() - last < 2.0:  # an update every 2 s is plenty, and cheap
                return
            last = self.clock()
            await self._working(note, answer)

        return await self.core.dispatch(command, progress)

    # -- replying -----------------------------------------------------------

    async def _working(self, note: str, answer: Answer) -> None:
        message = SlackMessage(f":hourglass_flowing_sand: {note}")
        try:
            if answer.respond is not None:
                await answer.respond(
                    **message.kwargs(),
                    response_type="ephemeral",
                    replace_original=answer.working_ephemeral,
                )
                answer.working_ephemeral = True
            elif answer.working_ts is not None:
                await api(
                    self.client.chat_update(
                        channel=answer.channel, ts=answer.working_ts, **message.kwargs()
                    )
                )
            else:
                posted = await self._post(answer.channel, message, answer.thread_ts)
                answer.working_ts = posted
        except SlackError as exc:  # a missing "working…" must not cost the answer
            log.warning("could not show progress in %s: %s", answer.channel, exc.message)

    async def _publish(self, reply: Reply, answer: Answer) -> None:
        rendered = render(reply)
        try:
            if _in_channel(reply, answer):
                await self._in_channel(reply, rendered, answer)
            else:
                await self._ephemeral(reply, rendered, answer)
        except SlackError as exc:
            outside = exc.code in ("not_in_channel", "channel_not_found")
            if answer.respond is None or not outside:
                log.error("could not answer in %s: %s", answer.channel, exc.message)
                return
            # Not a member of this channel: the command's response_url can still answer here,
            # though without a thread for the rest or files.
            log.info("answering through response_url in %s: %s", answer.channel, exc.message)
            await answer.respond(**rendered.first.kwargs(), response_type="in_channel")
            if len(rendered.messages) > 1 or _files(reply, rendered):
                await answer.respond(
                    text="Invite Calcifer to this channel to get the rest of the answer here.",
                    response_type="ephemeral",
                )

    async def _in_channel(self, reply: Reply, rendered: Rendered, answer: Answer) -> None:
        if answer.working_ephemeral and answer.respond is not None:
            await answer.respond(delete_original=True)
        first = rendered.first
        if answer.working_ts is not None:
            await api(
                self.client.chat_update(
                    channel=answer.channel, ts=answer.working_ts, **first.kwargs()
                )
            )
            ts = answer.working_ts
        else:
            ts = await self._post(answer.channel, first, answer.thread_ts)
        thread = answer.thread_ts or ts
        for extra in rendered.messages[1:]:
            await self._post(answer.channel, extra, thread)
        for file in _files(reply, rendered):
            await self._upload(answer.channel, file, thread)

    async def _ephemeral(self, reply: Reply, rendered: Rendered, answer: Answer) -> None:
        if answer.working_ts is not None:
            await api(self.client.chat_delete(channel=answer.channel, ts=answer.working_ts))
        for i, message in enumerate(rendered.messages):
            if answer.respond is not None:
                replace = i == 0 and answer.working_ephemeral
                await answer.respond(
                    **message.kwargs(), response_type="ephemeral", replace_original=replace
                )
            else:
                await api(
                    self.client.chat_postEphemeral(
                        channel=answer.channel,
                        user=answer.user,
                        thread_ts=answer.thread_ts,
                        **message.kwargs(),
                    )
                )
        files = _files(reply, rendered)
        if files:  # a file cannot be ephemeral: it goes to the caller's DM instead
            opened = await api(self.client.conversations_open(users=answer.user))
            for file in files:
                await self._upload(opened["channel"]["id"], file, None)

    async def _post(
        self,
        channel: str,
        message: SlackMessage,
        thread_ts: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        await self.pacer.wait(channel)
        response = await api(
            self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, metadata=metadata, **message.kwargs()
            )
        )
        return str(response["ts"])

    async def _upload(self, channel: str, file: Attachment, thread_ts: str | None) -> None:
        await api(
            self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=file.content,
                filename=file.filename,
                title=file.filename,
            )
        )

    # -- alerts from the outbox ---------------------------------------------

    async def deliver(self, delivery: Delivery) -> MessageRef | None:
        """Post, edit or thread one outbox message; a SlackError sends it back to the outbox."""
        rendered = render(delivery.reply)
        channel, target = delivery.channel, delivery.target
        if delivery.op == "update":
            if target is None:
                return None
            await api(
                self.client.chat_update(
                    channel=channel, ts=target.message_id, **rendered.first.kwargs()
                )
            )
            return None
        thread = (target.thread_id or target.message_id) if target is not None else None
        ts = await self._already_posted(delivery, thread) if delivery.retried else None
        if ts is None:
            metadata = {"event_type": METADATA_EVENT, "event_payload": {"id": delivery.id}}
            try:
                ts = await self._post(channel, rendered.first, thread, metadata)
            except SlackError as exc:
                if exc.code != "not_in_channel":
                    raise
                # A public alert channel Calcifer was never invited to: join it once.
                await api(self.client.conversations_join(channel=channel))
                ts = await self._post(channel, rendered.first, thread, metadata)
        # The alert is out; what follows is extra, and must not make the outbox send it twice.
        try:
            for extra in rendered.messages[1:]:
                await self._post(channel, extra, thread or ts)
            for file in _files(delivery.reply, rendered):
                await self._upload(channel, file, thread or ts)
        except SlackError as exc:
            log.warning("alert %d posted, but not its continuation: %s", delivery.id, exc.message)
        return MessageRef(PLATFORM, channel, ts, thread)

    async def _already_posted(self, delivery: Delivery, thread: str | None) -> str | None:
        """The ts of this delivery's message if an earlier, uncertain attempt got through."""
        try:
            if thread is None:
                found = await api(
                    self.client.conversations_history(
                        channel=delivery.channel, limit=100, include_all_metadata=True
                    )
                )
            else:
                found = await api(
                    self.client.conversations_replies(
                        channel=delivery.channel, ts=thread, limit=200, include_all_metadata=True
                    )
                )
        except SlackError as exc:
            if exc.code in ("", "ratelimited"):  # Slack is away: look again on the next try
                raise
            # No history scope (an older manifest): a rare duplicate beats a lost alert.
            log.warning("cannot look for an earlier post of alert %d: %s", delivery.id, exc.code)
            return None
        messages: list[dict[str, Any]] = found.get("messages") or []
        for message in messages:
            meta: dict[str, Any] = message.get("metadata") or {}
            if (
                meta.get("event_type") == METADATA_EVENT
                and meta.get("event_payload", {}).get("id") == delivery.id
            ):
                return str(message["ts"])
        return None

    # -- people -------------------------------------------------------------

    async def person(self, user: str) -> Person:
        """Display name and e-mail of a Slack user, cached: for replies and Git authorship."""
        now = self.clock()
        known = self._people.get(user)
        if known is not None and known.expires > now:
            return known
        try:
            info = (await api(self.client.users_info(user=user)))["user"]
        except SlackError as exc:
            log.info("users.info %s: %s", user, exc.message)
            return known or Person(None, None, now)
        profile = info.get("profile", {})
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or info.get("real_name")
            or info.get("name")
        )
        if len(self._people) > 10_000:
            self._people.clear()
        self._people[user] = found = Person(name, profile.get("email"), now + PEOPLE_TTL_S)
        return found


def _in_channel(reply: Reply, answer: Answer) -> bool:
    return answer.direct or reply.visibility is Visibility.CHANNEL


def _files(reply: Reply, rendered: Rendered) -> list[Attachment]:
    return [*reply.attachments, *([rendered.file] if rendered.file else [])]
