"""The fake Discord against the real discord.py client (no Calcifer adapter): each test
proves one protocol fact, so a wire test failing elsewhere points at the adapter, not at
the fake."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket

from tests.fakediscord import (
    ALERTS,
    ALICE,
    APPLICATION_ID,
    BOB,
    BOT_ID,
    BOT_TOKEN,
    EPHEMERAL,
    GENERAL,
    GUILD,
    GUILD_MEMBERS,
    MESSAGE_CONTENT,
    OPS_ROLE,
    PRIVATE,
    VERA,
    FakeDiscord,
)


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> Iterator[FakeDiscord]:
    # The conftest fixture restores both globals after the test.
    discord.http.Route.BASE = fake_discord.api_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake_discord.gateway_url)
    yield fake_discord
    assert fake_discord.errors == []


def make_client(*, message_content: bool = False) -> discord.Client:
    intents = discord.Intents.default()
    intents.message_content = message_content
    # on_ready waits guild_ready_timeout (2 s by default) after the last GUILD_CREATE.
    return discord.Client(intents=intents, guild_ready_timeout=0.01)


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str = BOT_TOKEN) -> AsyncIterator[discord.Client]:
    """The client started as in production (``start``), ready, and closed cleanly after."""
    task = asyncio.create_task(client.start(token))
    try:
        async with asyncio.timeout(5):
            while not client.is_ready():
                if task.done():
                    task.result()  # raises what stopped the client
                    raise AssertionError("client stopped before it was ready")
                await asyncio.sleep(0.005)
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def collect_messages(client: discord.Client) -> asyncio.Queue[discord.Message]:
    queue: asyncio.Queue[discord.Message] = asyncio.Queue()

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author.id != BOT_ID:
            queue.put_nowait(message)

    return queue


async def next_item(queue: asyncio.Queue[Any]) -> Any:
    async with asyncio.timeout(5):
        return await queue.get()


def text_channel(client: discord.Client, channel_id: int) -> discord.TextChannel:
    guild = client.get_guild(GUILD)
    assert guild is not None
    channel = guild.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_login_connect_and_ready_with_the_guild(fake: FakeDiscord) -> None:
    async with running(make_client()) as client:
        guild = client.get_guild(GUILD)
        assert guild is not None
        alerts = text_channel(client, ALERTS)
        private = text_channel(client, PRIVATE)

        assert client.user is not None and client.user.id == BOT_ID
        assert client.application_id == APPLICATION_ID
        assert (guild.name, alerts.name, guild.owner_id) == ("Howl's Castle", "alerts", ALICE)
        assert guild.me.id == BOT_ID
        assert alerts.permissions_for(guild.me).send_messages
        assert not private.permissions_for(guild.me).view_channel
        assert guild.get_role(OPS_ROLE) is not None

    assert [r.path for r in fake.requests[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    [conn] = fake.connections
    # discord.py asks for a compressed stream but parses the fake's plain text frames.
    assert conn.query["compress"] in {"zlib-stream", "zstd-stream"}
    assert conn.intents == discord.Intents.default().value
    assert fake.identifications == 1 and fake.heartbeats >= 1


async def test_wrong_token_is_login_failure(fake: FakeDiscord) -> None:
    client = make_client()
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()

    [request] = fake.requests
    assert (request.path, request.status, request.authorization) == (
        "/users/@me",
        401,
        "Bot not-the-token",
    )


async def test_gateway_closes_4004_on_a_wrong_identify_token(fake: FakeDiscord) -> None:
    client = make_client()
    await client.login(BOT_TOKEN)
    fake.token = "rotated"  # REST already said yes; the gateway now refuses
    with pytest.raises(discord.ConnectionClosed) as closed:
        await client.connect()
    await client.close()

    assert closed.value.code == 4004


async def test_message_content_not_granted_is_privileged_intents_required(
    fake: FakeDiscord,
) -> None:
    client = make_client(message_content=True)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        await client.start(BOT_TOKEN)
    await client.close()

    assert fake.identifications == 0


async def test_without_message_content_only_mentions_and_dms_keep_content(
    fake: FakeDiscord,
) -> None:
    client = make_client()
    received = collect_messages(client)
    async with running(client):
        plain = await fake.push_message(GENERAL, VERA, "status")
        await fake.push_message(GENERAL, BOB, f"<@{BOT_ID}> status")
        await fake.push_message(fake.dm_channel_id(ALICE), ALICE, "status please")
        got = [await next_item(received) for _ in range(3)]

    assert plain["content"] == ""
    assert fake.messages(GENERAL)[0]["content"] == "status"  # stored in full
    assert [m.content for m in got] == ["", f"<@{BOT_ID}> status", "status please"]
    mention = got[1]
    assert isinstance(mention.author, discord.Member)
    assert [r.id for r in mention.author.roles] == [GUILD, OPS_ROLE]
    assert client.user in mention.mentions
    assert isinstance(got[2].channel, discord.DMChannel)


async def test_with_message_content_granted_content_arrives(fake: FakeDiscord) -> None:
    fake.granted_intents |= MESSAGE_CONTENT
    client = make_client(message_content=True)
    received = collect_messages(client)
    async with running(client):
        await fake.push_message(ALERTS, VERA, "disk full?", role_ids=[OPS_ROLE])
        message = await next_item(received)

    assert (fake.connections[0].intents or 0) & MESSAGE_CONTENT
    assert message.content == "disk full?"
    assert message.channel.id == ALERTS
    assert [r.id for r in message.author.roles] == [GUILD, OPS_ROLE]


class Buttons(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.add_item(discord.ui.Button(label="Ack", custom_id="calcifer:ack:1"))


async def test_send_embed_view_and_file_is_stored_whole(fake: FakeDiscord) -> None:
    client = make_client()
    own: asyncio.Queue[discord.Message] = asyncio.Queue()

    @client.event
    async def on_message(message: discord.Message) -> None:
        own.put_nowait(message)

    async with running(client):
        channel = text_channel(client, ALERTS)
        sent = await channel.send(
            "disk almost full",
            embed=discord.Embed(title="web-1", description="92 %"),
            view=Buttons(),
            file=discord.File(io.BytesIO(b"df -h output"), filename="df.txt"),
        )
        echoed = await next_item(own)  # Discord dispatches the bot's own messages too
        downloaded = await sent.attachments[0].read()

    [stored] = fake.messages(ALERTS)
    assert stored["id"] == str(sent.id) == str(echoed.id)
    assert stored["embeds"][0]["title"] == "web-1"
    assert stored["components"][0]["components"][0]["custom_id"] == "calcifer:ack:1"
    [attachment] = stored["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("df.txt", 12)
    assert fake.attachment_content(attachment["id"]) == downloaded == b"df -h output"
    assert fake.requests_to("POST", rf"/channels/{ALERTS}/messages")[0].files[0].filename == (
        "df.txt"
    )
    assert sent.embeds[0].description == "92 %"
    assert echoed.content == "disk almost full"  # own messages keep content without intent


async def test_send_with_the_same_nonce_twice_creates_one_message(fake: FakeDiscord) -> None:
    async with running(make_client()) as client:
        channel = text_channel(client, GENERAL)
        first = await channel.send("deploy started", nonce=4711)
        second = await channel.send("deploy started", nonce=4711)

    assert first.id == second.id
    assert len(fake.messages(GENERAL)) == 1
    assert [
        r.json["enforce_nonce"] for r in fake.requests_to("POST", r"/channels/\d+/messages")
    ] == [
        True,
        True,
    ]


async def test_edit_reply_and_history(fake: FakeDiscord) -> None:
    fake.granted_intents |= MESSAGE_CONTENT
    client = make_client(message_content=True)
    received = collect_messages(client)
    async with running(client):
        channel = text_channel(client, GENERAL)
        sent = await channel.send("v1")
        edited = await sent.edit(content="v2")
        await fake.push_message(GENERAL, BOB, "ping")
        asked = await next_item(received)
        reply = await asked.reply("pong", mention_author=False)
        history = [m.content async for m in channel.history(limit=10)]

    stored_reply = fake.message(reply.id)
    assert stored_reply is not None
    assert (stored_reply["type"], stored_reply["message_reference"]["message_id"]) == (
        19,
        str(asked.id),
    )
    assert stored_reply["referenced_message"]["content"] == "ping"
    assert stored_reply["mentions"] == []  # mention_author=False
    assert reply.reference is not None and reply.reference.message_id == asked.id
    assert edited.content == "v2" and edited.edited_at is not None
    assert history == ["pong", "ping", "v2"]


def command_tree(
    client: discord.Client, seen: list[discord.Interaction]
) -> app_commands.CommandTree:
    tree = app_commands.CommandTree(client)

    @tree.command(name="calcifer", description="Talk to Calcifer", guild=discord.Object(GUILD))
    async def calcifer(interaction: discord.Interaction, command: str) -> None:
        seen.append(interaction)
        if command == "status":
            await interaction.response.defer()
            await interaction.followup.send(f"ran {command}")
        elif command == "secret":
            await interaction.response.send_message("the secret", ephemeral=True)
            await interaction.edit_original_response(content="the secret, edited")
        elif command == "quiet":
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send("quietly done")  # ephemeral because of the defer
            await interaction.followup.send("and one more", ephemeral=True)

    return tree


async def test_slash_command_synced_to_the_guild_defer_then_followup(fake: FakeDiscord) -> None:
    client = make_client()
    seen: list[discord.Interaction] = []
    tree = command_tree(client, seen)
    async with running(client):
        synced = await tree.sync(guild=discord.Object(GUILD))
        record = await fake.push_slash("status", user_id=BOB)
        await record.responded()
        [followup] = await record.followed_up()

    assert fake.syncs == [GUILD]
    assert [c.name for c in synced] == ["calcifer"]
    assert record.payload["data"]["id"] == fake.commands[GUILD][0]["id"] == str(synced[0].id)
    assert record.callback_type == 5 and record.with_response
    assert record.latency is not None and record.latency < 1
    # The first follow-up after a defer fills the "thinking" message.
    assert record.original is not None and followup["id"] == record.original["id"]
    assert (followup["content"], followup["flags"], followup["type"]) == ("ran status", 0, 20)
    assert [m["content"] for m in fake.messages(GENERAL)] == ["ran status"]
    [interaction] = seen
    assert isinstance(interaction.user, discord.Member)
    assert interaction.user.id == BOB and OPS_ROLE in [r.id for r in interaction.user.roles]
    assert interaction.channel is not None and interaction.channel.id == GENERAL
    [callback] = fake.requests_to("POST", r"/interactions/\d+/[^/]+/callback")
    assert callback.query == {"with_response": "1"} and callback.authorization is None
    [webhook] = fake.requests_to("POST", rf"/webhooks/{APPLICATION_ID}/[^/]+")
    assert webhook.query["wait"] == "1"


async def test_ephemeral_replies_are_visible_to_their_user_only(fake: FakeDiscord) -> None:
    client = make_client()
    tree = command_tree(client, [])
    async with running(client) as running_client:
        await tree.sync(guild=discord.Object(GUILD))
        secret = await fake.push_slash("secret", user_id=ALICE)
        await fake.wait_for(lambda: len(secret.edits) == 1)
        quiet = await fake.push_slash("quiet", user_id=VERA)
        followups = await quiet.followed_up(2)
        history = [m async for m in text_channel(running_client, GENERAL).history()]

    assert (secret.callback_type, secret.ephemeral) == (4, True)
    assert secret.original is not None and secret.original["content"] == "the secret, edited"
    assert fake.visible_to[int(secret.original["id"])] == ALICE
    assert [f["flags"] & EPHEMERAL for f in followups] == [EPHEMERAL, EPHEMERAL]
    assert quiet.original is not None and quiet.callback_type == 5
    assert followups[0]["id"] == quiet.original["id"] != followups[1]["id"]
    assert history == []  # ephemeral messages never show up in a channel's history


class AckButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"calcifer:ack:(?P<n>\d+)"
):
    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label="Ack", custom_id=f"calcifer:ack:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Button[Any],
        match: re.Match[str],
    ) -> AckButton:
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"acked {self.n}", view=None)


async def test_dynamic_item_button_gets_push_button(fake: FakeDiscord) -> None:
    client = make_client()
    client.add_dynamic_items(AckButton)
    async with running(client):
        view = discord.ui.View(timeout=None)
        view.add_item(AckButton(7))
        sent = await text_channel(client, ALERTS).send("disk full", view=view)
        record = await fake.push_button("calcifer:ack:7", sent.id, user_id=BOB)
        await record.responded()

    assert record.callback_type == 7
    stored = fake.message(sent.id)
    assert stored is not None
    assert (stored["content"], stored["components"]) == ("acked 7", [])
    assert stored["edited_timestamp"] is not None


class Panel(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Later", custom_id="panel:later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.defer()  # type 6 for a component: nothing new to show
        await interaction.edit_original_response(content="handled", view=None)
        report = discord.File(io.BytesIO(b"all green"), filename="report.txt")
        await interaction.followup.send("report", file=report, ephemeral=True)


async def test_component_defer_update_edits_its_message_and_follows_up(
    fake: FakeDiscord,
) -> None:
    async with running(make_client()) as client:
        sent = await text_channel(client, ALERTS).send("deploy?", view=Panel())
        record = await fake.push_button("panel:later", sent.id, user_id=BOB)
        [followup] = await record.followed_up()

    assert record.callback_type == 6
    assert record.original is not None and record.original["id"] == str(sent.id)
    assert (record.original["content"], record.original["components"]) == ("handled", [])
    assert followup["flags"] & EPHEMERAL
    assert fake.attachment_content(followup["attachments"][0]["id"]) == b"all green"
    assert fake.visible_to[int(followup["id"])] == BOB


async def test_members_intent_gets_the_member_list_before_ready(fake: FakeDiscord) -> None:
    fake.granted_intents |= GUILD_MEMBERS
    intents = discord.Intents.default()
    intents.members = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.01)
    async with running(client):
        guild = client.get_guild(GUILD)
        assert guild is not None and guild.chunked
        bob = guild.get_member(BOB)

    assert sorted(m.id for m in guild.members) == sorted([ALICE, BOB, VERA, BOT_ID])
    assert bob is not None and [r.id for r in bob.roles] == [GUILD, OPS_ROLE]
    assert any(frame["op"] == 8 for frame in fake.connections[0].received)


async def test_429_with_via_is_retried_and_stored_once(fake: FakeDiscord) -> None:
    async with running(make_client()) as client:
        fake.fail_next("POST", rf"/channels/{GENERAL}/messages", retry_after=0.05)
        sent = await text_channel(client, GENERAL).send("once")

    assert [r.status for r in fake.requests_to("POST", rf"/channels/{GENERAL}/messages")] == [
        429,
        200,
    ]
    assert [m["id"] for m in fake.messages(GENERAL)] == [str(sent.id)]


async def test_429_without_via_raises_http_exception(fake: FakeDiscord) -> None:
    async with running(make_client()) as client:
        fake.fail_next("POST", rf"/channels/{GENERAL}/messages", via=False)
        with pytest.raises(discord.HTTPException) as limited:
            await text_channel(client, GENERAL).send("lost")

    assert limited.value.status == 429
    assert fake.messages(GENERAL) == []


async def test_late_callback_is_unknown_interaction(fake: FakeDiscord) -> None:
    fake.interaction_timeout = 0.2
    client = make_client()
    tree = app_commands.CommandTree(client)
    errors: list[discord.HTTPException] = []

    @tree.command(name="calcifer", description="slow", guild=discord.Object(GUILD))
    async def slow(interaction: discord.Interaction, command: str) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.send_message("too late")
        except discord.HTTPException as exc:
            errors.append(exc)

    async with running(client):
        await tree.sync(guild=discord.Object(GUILD))
        record = await fake.push_slash("status", user_id=ALICE)
        await fake.wait_for(lambda: bool(errors))

    [error] = errors
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert (record.refused, record.callback_type) == ([(404, 10062)], None)
    assert fake.messages(GENERAL) == []


async def test_second_callback_is_already_acknowledged(fake: FakeDiscord) -> None:
    client = make_client()
    tree = command_tree(client, [])
    async with running(client):
        await tree.sync(guild=discord.Object(GUILD))
        record = await fake.push_slash("status", user_id=ALICE)
        await record.followed_up()
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{fake.api_url}/interactions/{record.id}/{record.token}/callback",
                json={"type": 4, "data": {"content": "again"}},
            ) as again,
        ):
            body = await again.json()

    assert (again.status, body["code"]) == (400, 40060)
    assert record.refused == [(400, 40060)]


async def test_reconnect_resumes_the_session(fake: FakeDiscord) -> None:
    client = make_client()
    received = collect_messages(client)
    resumed = asyncio.Event()

    @client.event
    async def on_resumed() -> None:
        resumed.set()

    async with running(client):
        await fake.disconnect_all(code=4000)
        await fake.wait_resumed()
        async with asyncio.timeout(5):
            await resumed.wait()
        await fake.request_reconnect()  # op 7
        await fake.wait_resumed(count=2)
        await fake.push_message(GENERAL, ALICE, f"<@{BOT_ID}> still there?")
        message = await next_item(received)

    assert (fake.identifications, fake.resumes, len(fake.connections)) == (1, 2, 3)
    assert message.content == f"<@{BOT_ID}> still there?"


async def test_dm_and_rest_errors(fake: FakeDiscord) -> None:
    async with running(make_client()) as client:
        alice = await client.fetch_user(ALICE)
        dm = await alice.send("hello alice")
        with pytest.raises(discord.NotFound) as unknown:
            await client.fetch_channel(999)
        with pytest.raises(discord.Forbidden) as hidden:
            await client.fetch_channel(PRIVATE)
        with pytest.raises(discord.HTTPException) as too_long:
            await text_channel(client, GENERAL).send("x" * 2001)

    assert [m["content"] for m in fake.messages(fake.dm_channel_id(ALICE))] == ["hello alice"]
    assert "guild_id" not in fake.messages(fake.dm_channel_id(ALICE))[0]
    assert isinstance(dm.channel, discord.DMChannel)
    assert (unknown.value.code, hidden.value.code, too_long.value.code) == (10003, 50001, 50035)


async def test_json_content_type_is_exact_and_errors_have_discords_shape(
    fake: FakeDiscord,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{fake.api_url}/users/@me", headers={"Authorization": f"Bot {BOT_TOKEN}"}
        ) as me:
            me_type = me.headers["Content-Type"]
        async with http.get(f"{fake.api_url}/users/@me") as anonymous:
            refused = await anonymous.json()

    assert me_type == "application/json"
    assert (anonymous.status, refused) == (401, {"message": "401: Unauthorized", "code": 0})
