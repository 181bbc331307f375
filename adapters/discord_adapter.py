"""The Discord adapter: a discord.py client in Calcifer's event loop.

A thin translator: the ``/calcifer`` application command, a mention
(``@Calcifer status``), ``!calcifer status`` (with the Message Content intent)
or a direct message becomes one :class:`~calcifer_bot.reply.Command` and one
``core.dispatch``; the Reply goes back as content or embeds
(:mod:`adapters.discord_embeds`). Button presses on alerts run their command
the same way. Alerts come from the outbox through :meth:`DiscordAdapter.deliver`.

discord.py owns the gateway connection, reconnects and rate limits; what it
raises is translated into :class:`DiscordError` at :func:`api`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiohttp
import discord
import yarl
from aiohttp import web
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route

from adapters.discord_embeds import DISMISS_ID, TOKEN_ID, DiscordMessage, button_id, command_of
from adapters.discord_embeds import render as render_reply
from calcifer_bot.config import DiscordSettings
from calcifer_bot.core import Core
from calcifer_bot.errors import ConfigError, IntegrationError
from calcifer_bot.outbox import Delivery
from calcifer_bot.reply import Attachment, Command, MessageRef, Reply, Visibility
from integrations.base import Connectivity, Reachability

log = logging.getLogger(__name__)
T = TypeVar("T")

PLATFORM = "discord"
COMMAND_NAME = "calcifer"
PREFIX = "!calcifer"
DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
# Interactions must be answered within 3 s: past this, a command that is still
# running is deferred ("Calcifer is thinking…") and answered by a follow-up.
DEFER_AFTER_S = 2.0
PROGRESS_EVERY_S = 2.0
READY_WAIT_S = 15.0
# A 429 asking for longer than this goes back to the outbox instead of holding
# the delivery worker (discord.py raises RateLimited past it).
MAX_RATELIMIT_WAIT_S = 30.0
# JSON error codes after which sending the same message again cannot succeed.
PERMANENT_CODES = frozenset(
    {
        10003,  # Unknown Channel
        10008,  # Unknown Message (an edit of a deleted alert)
        50006,  # Cannot send an empty message
        50035,  # Invalid Form Body
        50008,  # Cannot send messages in a non-text channel
    }
)
# Exactly what posting alerts, replies (Read Message History) and charts needs,
# by the names the Developer Portal and server settings show.
PERMISSION_NAMES = {
    "view_channel": "View Channels",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    "attach_files": "Attach Files",
    "read_message_history": "Read Message History",
}
PERMISSIONS = discord.Permissions(**dict.fromkeys(PERMISSION_NAMES, True))
SCOPES = ("bot", "applications.commands")
REFUSED = "DISCORD_BOT_TOKEN was refused by Discord (401 Unauthorized)"
LONG_BUTTONS = 1000  # commands too long for a custom id, remembered for this process


class DiscordError(IntegrationError):
    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: int = 0,
        permanent: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def translate(exc: Exception) -> DiscordError:
    """discord.py's and aiohttp's exceptions, as one error the outbox understands."""
    if isinstance(exc, discord.RateLimited):
        return DiscordError(
            f"Discord is rate limiting: retry in {exc.retry_after:.0f} s",
            status=429,
            permanent=False,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, discord.HTTPException):
        reason = exc.text or exc.response.reason or ""
        message = f"Discord refused the call: {exc.status} {reason}".strip()
        retry_after = None
        if exc.status == 429:  # not retried by discord.py: no Via header (a Cloudflare ban)
            value = exc.response.headers.get("Retry-After", "")
            retry_after = float(value) if value.replace(".", "", 1).isdigit() else 60.0
        return DiscordError(
            message,
            status=exc.status,
            code=exc.code,
            permanent=exc.code in PERMANENT_CODES,
            retry_after=retry_after,
        )
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        detail = f"cannot connect to {exc.host}:{exc.port}"
    elif isinstance(exc, TimeoutError):
        detail = "timed out"
    return DiscordError(f"cannot reach Discord: {detail}", permanent=False)


async def api(call: Awaitable[T]) -> T:
    """Every REST call goes through here: library exceptions stop at this edge."""
    try:
        return await call
    except (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise translate(exc) from None


def prepare(settings: DiscordSettings) -> None:
    """discord.py's process-global settings: its two base URLs, from the configuration."""
    # Calcifer never speaks: discord.py's "voice will NOT be supported" warnings are noise.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    Route.BASE = (settings.api_url or DEFAULT_API_URL).rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url or DEFAULT_GATEWAY_URL)


def intents(settings: DiscordSettings) -> discord.Intents:
    found = discord.Intents.none()
    found.guilds = found.guild_messages = found.dm_messages = True
    found.message_content = settings.message_content
    return found


def invite_url(application_id: int, guild: int | None = None) -> str:
    """The OAuth2 URL that adds the bot with exactly the permissions it needs."""
    where = discord.Object(guild) if guild else discord.utils.MISSING
    return discord.utils.oauth_url(
        application_id, permissions=PERMISSIONS, guild=where, scopes=SCOPES
    )


def from_discord(text: str, bot_id: int | None = None) -> str:
    """Discord's markup in typed text back into what Calcifer's grammar expects."""
    if bot_id is not None:
        text = re.sub(rf"<@!?{bot_id}>", " ", text)
    text = re.sub(r"<@!?(\d+)>", r"discord:\1", text)
    text = re.sub(r"<#(\d+)>", r"discord:\1", text)
    text = re.sub(r"<@&(\d+)>", r"discord-role:\1", text)
    text = re.sub(r"<(https?://[^\s>]+)>", r"\1", text)  # links written without a preview
    return text.strip()


Run = Callable[[discord.Interaction, str], Awaitable[None]]
Complete = Callable[[discord.Interaction, str], Awaitable[list[app_commands.Choice[str]]]]


def slash_command(run: Run, complete: Complete) -> app_commands.Command[Any, Any, None]:
    """``/calcifer command:…``: one string option, the same grammar as everywhere."""

    @app_commands.command(name=COMMAND_NAME, description="Run a Calcifer command")
    @app_commands.describe(command="what to run, e.g. status, help or check web")
    async def calcifer(interaction: discord.Interaction, command: str = "help") -> None:
        await run(interaction, command)

    @calcifer.autocomplete("command")
    async def suggest(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await complete(interaction, current)

    return calcifer


async def _nothing(interaction: discord.Interaction, current: str) -> Any:
    return []


async def sync_commands(settings: DiscordSettings, guild: int | None) -> int:
    """Register /calcifer in one guild (instant) or globally; the number registered."""
    client = await _logged_in(settings)
    try:
        tree = app_commands.CommandTree(client)
        tree.add_command(slash_command(_nothing, _nothing))
        where = discord.Object(guild) if guild else None
        if where is not None:
            tree.copy_global_to(guild=where)
        return len(await api(tree.sync(guild=where)))
    finally:
        await client.close()


async def application_id(settings: DiscordSettings) -> int:
    client = await _logged_in(settings)
    try:
        return client.application_id or 0
    finally:
        await client.close()


async def _logged_in(settings: DiscordSettings) -> discord.Client:
    """A client logged in over REST only, for one-off commands."""
    if settings.bot_token is None:
        raise ConfigError("DISCORD_BOT_TOKEN is not set")
    prepare(settings)
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(settings.bot_token.get_secret_value())
    except discord.LoginFailure:
        await client.close()
        raise ConfigError(REFUSED) from None
    except (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError) as exc:
        await client.close()
        raise translate(exc) from None
    return client


@dataclass(slots=True)
class Answer:
    """Where a command's reply goes and how it got there."""

    channel: str
    user: str
    direct: bool  # a DM: there is nobody to hide a reply from
    interaction: discord.Interaction | None = None
    message: discord.Message | None = None  # the user's message (mention, prefix, DM)
    working: discord.Message | None = None  # our "working…" reply, edited into the answer
    # The interaction's @original message ours to replace, and whether it is ephemeral.
    original_ephemeral: bool | None = None
    # That original is a deferred "thinking…" message: Discord lets the answer only
    # take its place, keeping the audience the deferral chose.
    thinking: bool = False
    force_ephemeral: bool = False  # a button press: the presser alone gets the answer


class _Client(discord.Client):
    """discord.py calls into these; each hands over to the adapter at once."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter

    async def setup_hook(self) -> None:
        await self.adapter._setup()

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter._on_message(message)


class CalciferButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"calcifer:.+"):
    """Every Calcifer button, on any message ever posted: the custom id says what it runs."""

    def __init__(self, button: discord.ui.Button[Any]) -> None:
        super().__init__(button)

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> CalciferButton:
        return cls(cast(discord.ui.Button[Any], item))

    async def callback(self, interaction: discord.Interaction) -> None:
        client = cast(_Client, interaction.client)
        await client.adapter._on_button(interaction, self.item.custom_id or "")


class DiscordAdapter:
    platform = PLATFORM

    def __init__(
        self,
        core: Core,
        settings: DiscordSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.bot_token is None:
            raise ConfigError("DISCORD_BOT_TOKEN is not set")
        self.core = core
        self.settings = settings
        self.clock = clock
        self.token = settings.bot_token.get_secret_value()
        prepare(settings)
        self.client = _Client(
            self,
            intents=intents(settings),
            # Replies quote what people typed: nothing Calcifer sends may ping anyone.
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S,
        )
        self.tree = app_commands.CommandTree(self.client)
        self.tree.add_command(slash_command(self._on_slash, self._complete))
        self._long: OrderedDict[str, str] = OrderedDict()
        self._gateway: asyncio.Task[None] | None = None
        self._logged_in = False

    # -- life cycle ---------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        return None  # everything arrives over the gateway

    async def check_connectivity(self) -> Connectivity:
        """GET /users/@me: the cheapest call that proves the bot token."""
        http = HTTPClient(asyncio.get_running_loop())
        try:
            async with asyncio.timeout(10):
                me = await http.static_login(self.token)
        except discord.LoginFailure:
            return Connectivity(Reachability.INVALID_AUTH, REFUSED)
        except TimeoutError:
            return Connectivity(Reachability.CANNOT_CONNECT, "Discord did not answer within 10 s")
        except (discord.DiscordException, aiohttp.ClientError, OSError) as exc:
            return Connectivity(Reachability.CANNOT_CONNECT, translate(exc).message)
        finally:
            await http.close()
        return Connectivity(Reachability.OK, f"as {me['username']} ({me['id']})")

    async def start(self) -> None:
        """Log in, then connect the gateway in the background.

        A refused token and a privileged intent the Developer Portal does not
        grant are fatal; an unreachable Discord is not: monitoring goes on,
        alerts wait in the outbox, and the connection is retried.
        """
        try:
            async with asyncio.timeout(READY_WAIT_S):
                await self._login()
        except (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("%s; alerts wait in the outbox until it answers", translate(exc).message)
        # READY dispatches "connect"; on_ready would wait 2 s more for guilds to arrive.
        ready = asyncio.ensure_future(self.client.wait_for("connect"))
        self._gateway = asyncio.create_task(self._connect())
        if self._logged_in:  # else Discord is away: no point waiting for its gateway
            await asyncio.wait(
                {ready, self._gateway}, timeout=READY_WAIT_S, return_when=asyncio.FIRST_COMPLETED
            )
        ready.cancel()
        if self._gateway.done():
            self._gateway.result()  # raises the fatal error that ended it
        self._gateway.add_done_callback(_gateway_ended)
        if ready.done() and not ready.cancelled():
            log.info("connected to Discord as %s", self.client.user)
        else:
            log.warning("the Discord gateway is not connected yet; still trying")

    async def _connect(self) -> None:
        """Log in (until Discord answers), then run the gateway; discord.py reconnects it."""
        delay = 1.0
        while not self._logged_in:
            try:
                await self._login()
            except (discord.DiscordException, aiohttp.ClientError, OSError) as exc:
                log.warning("Discord: %s; retrying in %.0f s", translate(exc).message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300)
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "CALCIFER_DISCORD_MESSAGE_CONTENT is on, but the Message Content intent "
                "is not enabled for this bot: turn it on in the Discord Developer Portal "
                "(Bot → Privileged Gateway Intents), or switch the setting off and use "
                "/calcifer or @mentions"
            ) from None
        except discord.ConnectionClosed as exc:  # only the closes discord.py will not retry
            if exc.code == 4004:
                raise ConfigError(REFUSED) from None
            raise ConfigError(f"Discord closed the gateway: {exc.code} {exc.reason}") from None

    async def _login(self) -> None:
        try:
            await self.client.login(self.token)
        except discord.LoginFailure:
            raise ConfigError(REFUSED) from None
        self._logged_in = True

    async def stop(self) -> None:
        await self.client.close()
        if self._gateway is not None:
            self._gateway.cancel()
            await asyncio.gather(self._gateway, return_exceptions=True)

    async def _setup(self) -> None:
        """After login, before the gateway: buttons of every age, and guild commands."""
        self.client.add_dynamic_items(CalciferButton)
        for guild_id in self.settings.guilds:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                await self.tree.sync(guild=guild)
            except discord.HTTPException as exc:
                log.warning(
                    "cannot register /%s in guild %d: %s (is Calcifer in that guild? "
                    "`calcifer discord invite` prints the invite URL)",
                    COMMAND_NAME,
                    guild_id,
                    translate(exc).message,
                )

    # -- incoming -----------------------------------------------------------

    async def _complete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """The commands this user may run that start with what they typed (25 at most)."""
        role = (await self.core.role_of(self._command(interaction.user, "", ""))).role
        typed = current.strip().lower()
        specs = [s for s in self.core.registry.visible(role) if s.name.startswith(typed)]
        return [app_commands.Choice(name=s.usage[:100], value=s.name) for s in specs[:25]]

    async def _on_slash(self, interaction: discord.Interaction, typed: str) -> None:
        text = from_discord(typed, self._bot_id)
        answer = self._interaction_answer(interaction)
        spec = self.core.lookup(text)
        ephemeral = not answer.direct and (spec is None or spec.visibility is Visibility.EPHEMERAL)
        try:
            if spec is not None and spec.slow:
                await self._defer(answer, ephemeral)
        except DiscordError as exc:  # nobody would see the answer: don't act on it
            log.warning("/%s %s not run: %s", COMMAND_NAME, text, exc.message)
            return
        task = asyncio.ensure_future(self._dispatch(text, answer))
        if not interaction.response.is_done():
            done, _ = await asyncio.wait({task}, timeout=DEFER_AFTER_S)
            if not done:  # taking longer than it should: say so before Discord gives up
                try:
                    await self._defer(answer, ephemeral)
                except DiscordError as exc:  # the command runs on; its answer may be lost
                    log.warning("could not defer /%s %s: %s", COMMAND_NAME, text, exc.message)
        await self._publish(await task, answer)

    async def _on_button(self, interaction: discord.Interaction, custom_id: str) -> None:
        try:
            await self._press(interaction, custom_id)
        except DiscordError as exc:  # the press came too late, or Discord is away
            log.warning("button %s: %s", custom_id, exc.message)

    async def _press(self, interaction: discord.Interaction, custom_id: str) -> None:
        message = interaction.message
        on_ephemeral = bool(message and message.flags.ephemeral)
        if custom_id.startswith(DISMISS_ID):
            await api(interaction.response.edit_message(content="Cancelled.", embeds=[], view=None))
            return
        text = command_of(custom_id) or self._long.get(custom_id.removeprefix(TOKEN_ID))
        answer = self._interaction_answer(interaction)
        if text is None:
            expired = "This button has expired: type the command instead."
            await api(interaction.response.send_message(expired, ephemeral=True))
            return
        if on_ephemeral:
            # A confirmation: its answer takes its place, or is posted for all.
            await api(interaction.response.defer())
            answer.original_ephemeral = True
        else:
            # On an alert the engine edits the message itself (acknowledged by…);
            # the presser alone gets the command's answer.
            answer.force_ephemeral = True
            await self._defer(answer, ephemeral=True)
        await self._publish(await self._dispatch(text, answer), answer)

    async def _on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.author == self.client.user or message.webhook_id:
            return  # Calcifer's own messages, other bots, webhooks
        direct = message.guild is None
        content = message.content
        bot_id = self._bot_id
        mentioned = bot_id is not None and re.search(rf"<@!?{bot_id}>", content) is not None
        if content.lower().startswith(PREFIX) and self.settings.message_content:
            text = content[len(PREFIX) :]
            if text[:1] not in ("", " ", "\n"):
                return  # "!calcifers" is not addressed to us
        elif mentioned or direct:
            text = content
        else:
            return
        answer = Answer(str(message.channel.id), str(message.author.id), direct, message=message)
        await self._run(from_discord(text, bot_id), answer, message.author)

    async def _run(self, text: str, answer: Answer, author: discord.abc.User) -> None:
        spec = self.core.lookup(text)
        if spec is not None and spec.slow:
            await self._working(f"Working on `{text}`…", answer)
        reply = await self._dispatch(text, answer, author)
        await self._publish(reply, answer)

    async def _dispatch(
        self, text: str, answer: Answer, author: discord.abc.User | None = None
    ) -> Reply:
        who = author or (answer.interaction.user if answer.interaction else None)
        command = self._command(who, answer.channel, text)
        last = self.clock()

        async def progress(note: str) -> None:
            nonlocal last
            if self.clock() - last < PROGRESS_EVERY_S:  # an update every 2 s is plenty
                return
            last = self.clock()
            await self._working(note, answer)

        return await self.core.dispatch(command, progress)

    def _command(self, user: discord.abc.User | None, channel: str, text: str) -> Command:
        if user is None:
            return Command(PLATFORM, "0", channel, text)
        roles = getattr(user, "roles", ())  # a Member in a guild, a User in a DM
        groups = frozenset(f"discord-role:{r.id}" for r in roles if not r.is_default())
        return Command(PLATFORM, str(user.id), channel, text, user.display_name, groups=groups)

    def _interaction_answer(self, interaction: discord.Interaction) -> Answer:
        return Answer(
            str(interaction.channel_id),
            str(interaction.user.id),
            interaction.guild_id is None,
            interaction=interaction,
        )

    @property
    def _bot_id(self) -> int | None:
        return self.client.user.id if self.client.user else None

    # -- replying -----------------------------------------------------------

    async def _defer(self, answer: Answer, ephemeral: bool) -> None:
        interaction = answer.interaction
        if interaction is None or interaction.response.is_done():
            return
        await api(interaction.response.defer(ephemeral=ephemeral, thinking=True))
        answer.original_ephemeral, answer.thinking = ephemeral, True

    async def _working(self, note: str, answer: Answer) -> None:
        text = f"⏳ {note}"
        try:
            if answer.interaction is not None:
                if answer.original_ephemeral is not None:
                    await api(answer.interaction.edit_original_response(content=text))
            elif answer.working is not None:
                await api(answer.working.edit(content=text))
            elif answer.message is not None:
                answer.working = await api(answer.message.reply(text, mention_author=False))
        except DiscordError as exc:  # a missing "working…" must not cost the answer
            log.warning("could not show progress in %s: %s", answer.channel, exc.message)

    async def _publish(self, reply: Reply, answer: Answer) -> None:
        rendered = render_reply(reply)
        try:
            if answer.interaction is not None:
                await self._answer_interaction(reply, rendered.messages, answer)
            else:
                await self._answer_message(rendered.messages, answer)
        except DiscordError as exc:
            log.error("could not answer in %s: %s", answer.channel, exc.message)

    async def _answer_interaction(
        self, reply: Reply, messages: list[DiscordMessage], answer: Answer
    ) -> None:
        interaction = answer.interaction
        assert interaction is not None
        ephemeral = not answer.direct and (
            answer.force_ephemeral or reply.visibility is Visibility.EPHEMERAL
        )
        first, rest = messages[0], messages[1:]
        if not interaction.response.is_done():
            await api(interaction.response.send_message(**self._send(first), ephemeral=ephemeral))
        elif answer.thinking or answer.original_ephemeral == ephemeral:
            await api(interaction.edit_original_response(**self._edit(first)))
            ephemeral = bool(answer.original_ephemeral)
        else:  # a confirmation answered for all: posted, and the question removed
            await api(interaction.followup.send(**self._send(first), ephemeral=ephemeral))
            await api(interaction.delete_original_response())
        for message in rest:
            await api(interaction.followup.send(**self._send(message), ephemeral=ephemeral))

    async def _answer_message(self, messages: list[DiscordMessage], answer: Answer) -> None:
        assert answer.message is not None
        first, rest = messages[0], messages[1:]
        if answer.working is not None:
            await api(answer.working.edit(**self._edit(first)))
        else:
            await api(answer.message.reply(**self._send(first), mention_author=False))
        for message in rest:
            await api(answer.message.channel.send(**self._send(message)))

    def _send(self, message: DiscordMessage) -> dict[str, Any]:
        """Keyword arguments for send(), send_message() and followup.send()."""
        kwargs: dict[str, Any] = {"content": message.content or None}
        kwargs["embeds"] = [discord.Embed.from_dict(e) for e in message.embeds]
        if message.files:
            kwargs["files"] = [_file(f) for f in message.files]
        view = self._view(message)
        if view is not None:
            kwargs["view"] = view
        return kwargs

    def _edit(self, message: DiscordMessage) -> dict[str, Any]:
        """Keyword arguments for edit() and edit_original_response(): all of it replaced."""
        return {
            "content": message.content or None,
            "embeds": [discord.Embed.from_dict(e) for e in message.embeds],
            "attachments": [_file(f) for f in message.files],
            "view": self._view(message),
        }

    def _view(self, message: DiscordMessage) -> discord.ui.View | None:
        if not message.buttons:
            return None
        view = discord.ui.View(timeout=None)
        seen: set[str] = set()
        for index, button in enumerate(message.buttons):
            custom_id = DISMISS_ID + str(index)
            if button.command is not None:
                custom_id = button_id(button.command) or ""
                if not custom_id or custom_id in seen:  # ids must be unique in a message
                    custom_id = self._remember(button.command)
            seen.add(custom_id)
            style = {
                "primary": discord.ButtonStyle.primary,
                "danger": discord.ButtonStyle.danger,
            }.get(button.style, discord.ButtonStyle.secondary)
            item = discord.ui.Button[Any](label=button.label, style=style, custom_id=custom_id)
            view.add_item(CalciferButton(item))
        return view

    def _remember(self, command: str) -> str:
        """A token for a command too long for a custom id; it lasts for this process."""
        token = secrets.token_hex(8)
        self._long[token] = command
        while len(self._long) > LONG_BUTTONS:
            self._long.popitem(last=False)
        return TOKEN_ID + token

    # -- alerts from the outbox ---------------------------------------------

    async def deliver(self, delivery: Delivery) -> MessageRef | None:
        """Post, edit or reply to one outbox message; a DiscordError sends it back."""
        if not delivery.channel.isdigit():
            raise DiscordError(
                f"{delivery.destination!r} is not a Discord channel id", permanent=True
            )
        rendered = render_reply(delivery.reply)
        channel = self.client.get_partial_messageable(int(delivery.channel))
        target = delivery.target
        if delivery.op == "update":
            if target is None:
                return None
            message = channel.get_partial_message(int(target.message_id))
            await api(message.edit(**self._edit(rendered.first)))
            return None
        # Discord drops a second message with the same nonce from the same author
        # for a few minutes: a retry after an uncertain attempt does not post twice.
        kwargs = self._send(rendered.first) | {"nonce": f"calcifer-{delivery.id}"}
        if target is not None:
            kwargs["reference"] = discord.MessageReference(
                message_id=int(target.message_id),
                channel_id=int(delivery.channel),
                fail_if_not_exists=False,  # a deleted alert still gets its recovery
            )
        posted = await api(channel.send(**kwargs))
        # The alert is out; what follows is extra, and must not make the outbox send it twice.
        try:
            for extra in rendered.messages[1:]:
                await api(channel.send(**self._send(extra), reference=posted.to_reference()))
        except DiscordError as exc:
            log.warning("alert %d posted, but not its continuation: %s", delivery.id, exc.message)
        thread = target.message_id if target is not None else None
        return MessageRef(PLATFORM, delivery.channel, str(posted.id), thread)


def _gateway_ended(task: asyncio.Task[None]) -> None:
    # After start-up nobody awaits the gateway: a fatal end must still be heard.
    if not task.cancelled() and isinstance(task.exception(), ConfigError):
        log.error("Discord gateway stopped: %s", cast(ConfigError, task.exception()).message)


def _file(attachment: Attachment) -> discord.File:
    return discord.File(io.BytesIO(attachment.content), filename=attachment.filename)
