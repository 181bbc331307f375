"""The Discord adapter end to end: the real discord.py client against tests/fakediscord.py.

The adapter is built the way ``calcifer run`` builds it (``chat_adapters`` from
settings read from an environment); only the REST and gateway URLs and the token
are the test's. Alerts come from the real engine and outbox on a real database.
Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters import chat_adapters
from adapters.discord_adapter import REFUSED, DiscordAdapter, from_discord
from adapters.discord_embeds import COLOURS, CONTENT, EMBED_TOTAL, embed_size
from calcifer_bot.core import Core
from calcifer_bot.errors import ConfigError
from calcifer_bot.models import AuditEntry, Endpoint, Incident, OutboxMessage
from calcifer_bot.outbox import LEASE, deliver_pending, enqueue
from calcifer_bot.reply import Reply, Status
from tests import conftest
from tests.conftest import FakeClock, make_settings, observe
from tests.fakediscord import (
    ALERTS,
    ALICE,
    BOB,
    BOT_ID,
    BOT_TOKEN,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    EPHEMERAL,
    GENERAL,
    GUILD,
    MESSAGE_CONTENT,
    OPS_ROLE,
    VERA,
    FakeDiscord,
    Interaction,
)
from tests.fakeslack import FakeSlack, slash_command
from tests.test_cli import calcifer, running
from tests.test_slack import slack_env

JSON = dict[str, Any]
ADMIN, OPERATOR, VIEWER = ALICE, BOB, VERA  # BOB is an operator through OPS_ROLE


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> FakeDiscord:
    return fake_discord  # the conftest fixture, by a short name


def discord_env(fake: FakeDiscord, **extra: str) -> dict[str, str]:
    return {
        "CALCIFER_ADMINS": f"discord:{ADMIN}",
        "CALCIFER_OPERATORS": f"discord-role:{OPS_ROLE}",
        "DISCORD_BOT_TOKEN": BOT_TOKEN,
        "CALCIFER_DISCORD_API_URL": fake.api_url,
        "CALCIFER_DISCORD_GATEWAY_URL": fake.gateway_url,
        "CALCIFER_DISCORD_GUILDS": str(GUILD),
        **extra,
    }


@pytest.fixture
def settings_env(fake: FakeDiscord) -> dict[str, str]:
    return discord_env(fake)


@pytest.fixture
async def adapter(core: Core) -> AsyncIterator[DiscordAdapter]:
    [built] = chat_adapters(core, core.settings)
    assert isinstance(built, DiscordAdapter)
    yield built
    await built.stop()


@pytest.fixture
async def connected(adapter: DiscordAdapter, fake: FakeDiscord) -> AsyncIterator[DiscordAdapter]:
    await adapter.start()
    await fake.wait_ready()
    yield adapter
    assert fake.errors == []


async def add_endpoint(core: Core, name: str, **fields: Any) -> int:
    return await conftest.add_endpoint(core, name, **{"channel": f"discord:{ALERTS}", **fields})


async def post(core: Core, reply: Reply, key: str) -> None:
    """A message for the alerts channel, into the outbox as the engine puts one there."""
    destination = f"discord:{ALERTS}"
    await core.db.write(
        lambda s: enqueue(
            s, key=key, destination=destination, kind="info", reply=reply, now=core.clock()
        )
    )


async def deliver(core: Core, adapter: DiscordAdapter) -> int:
    return await deliver_pending(core.outbox, adapter.deliver, ("discord",))


async def start_up_error(core: Core, fake: FakeDiscord, **env: str) -> str:
    """What stops an adapter on settings with ``env`` from starting."""
    settings = make_settings("sqlite://", **discord_env(fake, **env))
    adapter = DiscordAdapter(core, settings.discord)
    try:
        with pytest.raises(ConfigError) as raised:
            await adapter.start()
    finally:
        await adapter.stop()
    return raised.value.message


def words(message: JSON | None) -> str:
    """Everything a person reads in a message: content and embeds."""
    assert message is not None
    return json.dumps([message.get("content"), message.get("embeds")], ensure_ascii=False)


def custom_ids(message: JSON) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


def posted(fake: FakeDiscord, channel: int) -> list[JSON]:
    return [m for m in fake.messages(channel) if m["author"]["id"] == str(BOT_ID)]


async def alert_for(core: Core, adapter: DiscordAdapter, fake: FakeDiscord, name: str) -> JSON:
    """An endpoint that goes down once, its alert delivered to the alerts channel."""
    endpoint_id = await add_endpoint(core, name, failures=1, successes=1)
    await observe(core, endpoint_id, ok=False)
    assert await deliver(core, adapter) == 1
    [alert] = posted(fake, ALERTS)
    return alert


async def incident_of(core: Core, name: str) -> Incident:
    def find(session: Any) -> Incident:
        return session.scalars(select(Incident).join(Endpoint).where(Endpoint.name == name)).one()

    return await core.db.read(find)


async def answered(fake: FakeDiscord, interaction: Interaction) -> JSON:
    """The message the user finally sees for an interaction."""
    await interaction.responded()
    if interaction.callback_type in (DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE):
        await fake.wait_for(lambda: bool(interaction.edits or interaction.followups))
    answer = interaction.followups[-1] if interaction.followups else interaction.original
    assert answer is not None
    return answer


# -- the slash command --------------------------------------------------------------


async def test_slash_command_is_registered_in_the_configured_guild_at_start(
    connected: DiscordAdapter, fake: FakeDiscord
) -> None:
    [command] = fake.commands[GUILD]
    assert command["name"] == "calcifer"
    [option] = command["options"]
    assert (option["name"], option["type"], option.get("required")) == ("command", 3, False)
    assert None not in fake.commands, "start-up never registers globally"


async def test_a_slash_command_is_answered_at_once_and_privately(
    connected: DiscordAdapter, fake: FakeDiscord
) -> None:
    interaction = await fake.push_slash("whoami", user_id=OPERATOR)

    answer = await answered(fake, interaction)
    assert interaction.callback_type == CHANNEL_MESSAGE
    assert interaction.latency is not None and interaction.latency < 1.0
    assert interaction.ephemeral
    assert "operator" in words(answer) and f"discord:{OPERATOR}" in words(answer)


async def test_a_slow_command_is_deferred_then_answered_in_place(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core, closed_port: int
) -> None:
    await add_endpoint(core, "web", target=f"127.0.0.1:{closed_port}")

    interaction = await fake.push_slash("check web", user_id=OPERATOR)

    await interaction.responded()
    assert interaction.callback_type == DEFERRED_CHANNEL_MESSAGE
    assert interaction.latency is not None and interaction.latency < 1.0
    await fake.wait_for(lambda: "web" in words(interaction.original) and bool(interaction.edits))
    assert not interaction.ephemeral, "check is posted for the channel"
    assert "down" in words(interaction.original).lower()
    assert interaction.followups == [], "the deferred message became the answer"


async def test_a_deferred_command_shows_its_progress_before_the_answer(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core, closed_port: int
) -> None:
    await add_endpoint(core, "web", target=f"127.0.0.1:{closed_port}")
    ticks = iter(range(0, 10_000, 3))  # 3 s pass between looks: past the 2 s throttle
    connected.clock = lambda: float(next(ticks))

    interaction = await fake.push_slash("check web", user_id=OPERATOR)

    await fake.wait_for(lambda: len(interaction.edits) >= 2)
    progress, answer = interaction.edits[0], interaction.edits[-1]
    assert progress["content"] == "⏳ Checking web…"
    assert answer["content"] is None and "web" in json.dumps(answer["embeds"])


async def test_the_command_option_suggests_what_the_user_may_run(
    connected: DiscordAdapter, fake: FakeDiscord
) -> None:
    viewer = await fake.push_slash("endpoint", user_id=VIEWER, typing=True)
    admin = await fake.push_slash("endpoint", user_id=ADMIN, typing=True)

    def suggested(interaction: Interaction) -> list[str]:
        assert interaction.callback is not None
        return [c["value"] for c in interaction.callback["data"]["choices"]]

    await viewer.responded()
    await admin.responded()
    assert suggested(viewer) == ["endpoint list", "endpoint show"]
    assert {"endpoint add", "endpoint remove", "endpoint list"} <= set(suggested(admin))
    [shown] = [
        c["name"] for c in viewer.callback["data"]["choices"] if c["value"] == "endpoint list"
    ]
    assert shown == "endpoint list [--down] [--tag TAG]", "the usage line is what the user reads"


async def test_a_slow_command_discord_gave_up_on_is_not_run(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    await add_endpoint(core, "web")
    fake.interaction_timeout = 0.0  # every callback arrives "after 3 s"

    interaction = await fake.push_slash("check web", user_id=OPERATOR)

    await fake.wait_for(lambda: bool(interaction.refused))
    await asyncio.sleep(0.1)
    assert interaction.refused == [(404, 10062)]
    audited = await core.db.read(lambda s: list(s.scalars(select(AuditEntry.command))))
    assert audited == [], "nobody would see the result: the check did not run"


async def test_an_unknown_command_gets_a_short_private_error(
    connected: DiscordAdapter, fake: FakeDiscord
) -> None:
    interaction = await fake.push_slash("stauts", user_id=VIEWER)

    answer = await answered(fake, interaction)
    assert interaction.ephemeral
    assert "status" in words(answer), "the error suggests the command meant"
    assert "Traceback" not in words(answer)


async def test_a_viewer_is_denied_an_admin_command_and_nothing_changes(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    await add_endpoint(core, "web")

    interaction = await fake.push_slash("endpoint remove web --yes", user_id=VIEWER)

    answer = await answered(fake, interaction)
    assert interaction.ephemeral
    assert "Not allowed" in words(answer) and "admin" in words(answer)
    names = await core.db.read(lambda s: list(s.scalars(select(Endpoint.name))))
    assert names == ["web"]


async def test_a_discord_role_makes_its_members_operators(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    await add_endpoint(core, "web")

    by_role = await answered(fake, await fake.push_slash("mute web 1h", user_id=BOB))
    without = await answered(fake, await fake.push_slash("mute web 1h", user_id=BOB, role_ids=()))

    assert "Muted" in words(by_role)
    assert "Not allowed" in words(without)


async def test_an_admin_command_asks_for_confirmation_and_the_button_confirms(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    await add_endpoint(core, "web")
    question = await answered(fake, await fake.push_slash("endpoint remove web", user_id=ADMIN))
    assert question["flags"] & EPHEMERAL
    confirm, _ = custom_ids(question)
    assert confirm == "calcifer:endpoint:remove web --yes"

    pressed = await fake.push_button(confirm, question["id"], user_id=ADMIN)

    await pressed.responded()
    await fake.wait_for(lambda: bool(pressed.followups) and bool(pressed.deleted))
    [done] = pressed.followups
    assert not done["flags"] & EPHEMERAL, "a confirmed action is posted for everyone"
    assert "web" in words(done)
    names = await core.db.read(lambda s: list(s.scalars(select(Endpoint.name))))
    assert names == []


async def test_cancel_replaces_the_question(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    await add_endpoint(core, "web")
    question = await answered(fake, await fake.push_slash("endpoint remove web", user_id=ADMIN))
    _, cancel = custom_ids(question)

    pressed = await fake.push_button(cancel, question["id"], user_id=ADMIN)

    await pressed.responded()
    assert pressed.callback is not None
    assert pressed.callback["data"]["content"] == "Cancelled."
    assert pressed.callback["data"]["components"] == []
    names = await core.db.read(lambda s: list(s.scalars(select(Endpoint.name))))
    assert names == ["web"]


# -- mentions, the prefix, direct messages ---------------------------------------------


async def test_a_mention_is_answered_as_a_reply(
    connected: DiscordAdapter, fake: FakeDiscord
) -> None:
    asked = await fake.push_message(GENERAL, OPERATOR, f"<@{BOT_ID}> whoami", mentions_bot=True)

    answer = await fake.wait_for_message(GENERAL, lambda m: m["author"]["id"] == str(BOT_ID))
    assert answer["message_reference"]["message_id"] == asked["id"]
    assert "operator" in words(answer)
    assert answer["mentions"] == [], "the reply does not ping the asker"


async def test_nothing_calcifer_posts_pings_anyone(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    reply = Reply(f"@everyone look, <@{ADMIN}> and <@&{OPS_ROLE}>")
    await post(core, reply, "ping")

    assert await deliver(core, connected) == 1

    [message] = posted(fake, ALERTS)
    assert "@everyone" in message["content"]
    assert message["mentions"] == [] and message["mention_roles"] == []
    assert not message["mention_everyone"]


async def test_a_slow_mention_shows_working_then_the_answer_in_its_place(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core, closed_port: int
) -> None:
    await add_endpoint(core, "web", target=f"127.0.0.1:{closed_port}")

    await fake.push_message(GENERAL, OPERATOR, f"<@{BOT_ID}> check web", mentions_bot=True)

    await fake.wait_for(
        lambda: any(m.get("edited_timestamp") for m in posted(fake, GENERAL)), timeout=10
    )
    [answer] = posted(fake, GENERAL)
    assert "Working" not in words(answer) and "web" in words(answer)


async def test_plain_messages_are_not_commands(
    connected: DiscordAdapter, fake: FakeDiscord
) -> None:
    await fake.push_message(GENERAL, OPERATOR, "whoami")
    await fake.push_message(GENERAL, OPERATOR, "!calcifer whoami")  # no Message Content intent
    await asyncio.sleep(0.2)

    assert posted(fake, GENERAL) == []


async def test_a_direct_message_needs_no_prefix(
    connected: DiscordAdapter, fake: FakeDiscord
) -> None:
    dm = fake.dm_channel_id(OPERATOR)

    await fake.push_message(dm, OPERATOR, "help")

    answer = await fake.wait_for_message(dm, lambda m: m["author"]["id"] == str(BOT_ID))
    assert "status" in words(answer)


async def test_the_prefix_works_with_the_message_content_intent(
    fake: FakeDiscord, core: Core
) -> None:
    fake.granted_intents |= MESSAGE_CONTENT
    settings = make_settings("sqlite://", **discord_env(fake, CALCIFER_DISCORD_MESSAGE_CONTENT="1"))
    adapter = DiscordAdapter(core, settings.discord)
    try:
        await adapter.start()
        asked = await fake.push_message(GENERAL, OPERATOR, "!calcifer whoami")
        answer = await fake.wait_for_message(GENERAL, lambda m: m["author"]["id"] == str(BOT_ID))
        await fake.push_message(GENERAL, OPERATOR, "!calciferwhoami")
        await asyncio.sleep(0.2)
    finally:
        await adapter.stop()

    assert fake.connections[-1].intents is not None
    assert fake.connections[-1].intents & MESSAGE_CONTENT
    assert answer["message_reference"]["message_id"] == asked["id"]
    assert "operator" in words(answer)
    assert len(posted(fake, GENERAL)) == 1, "!calciferwhoami is not addressed to Calcifer"


async def test_message_content_on_but_not_granted_stops_start_up_saying_so(
    fake: FakeDiscord, core: Core
) -> None:
    message = await start_up_error(core, fake, CALCIFER_DISCORD_MESSAGE_CONTENT="1")

    assert "Message Content intent" in message
    assert "Developer Portal" in message


def test_discord_markup_becomes_calcifers_grammar() -> None:
    assert from_discord(f"<@{BOT_ID}> role grant <@7> operator", BOT_ID) == (
        "role grant discord:7 operator"
    )
    assert from_discord(f"<@!{BOT_ID}> status", BOT_ID) == "status"
    assert from_discord("endpoint add web http <https://x.org/> --channel <#200>") == (
        "endpoint add web http https://x.org/ --channel discord:200"
    )
    assert from_discord("role grant <@&300> operator") == "role grant discord-role:300 operator"


# -- alerts ---------------------------------------------------------------------------


async def test_an_alert_its_recovery_reply_and_the_edit_to_resolved(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core, clock: FakeClock
) -> None:
    alert = await alert_for(core, connected, fake, "web")
    incident = await incident_of(core, "web")
    [embed] = alert["embeds"]
    assert embed["color"] == COLOURS[Status.ERROR] and "web is down" in embed["title"]
    assert custom_ids(alert) == [
        f"calcifer:ack:{incident.id}",
        "calcifer:mute:web 1h",
        "calcifer:check:web",
    ]

    clock.advance(timedelta(minutes=12))
    await observe(core, incident.endpoint_id, ok=True)
    await deliver(core, connected)

    recovery = next(m for m in posted(fake, ALERTS) if m["id"] != alert["id"])
    assert recovery["message_reference"]["message_id"] == alert["id"]
    assert "12m" in words(recovery) or "12 min" in words(recovery)
    edited = fake.message(alert["id"])
    assert edited is not None and edited["edited_timestamp"]
    [resolved] = edited["embeds"]
    assert resolved["color"] == COLOURS[Status.OK]
    assert resolved["title"].startswith("🟢 Resolved: web was down for")
    assert edited["components"] == [], "a resolved alert has no buttons"


async def test_a_button_on_an_alert_works_after_a_restart(core: Core, fake: FakeDiscord) -> None:
    [first] = chat_adapters(core, core.settings)
    assert isinstance(first, DiscordAdapter)
    await first.start()
    alert = await alert_for(core, first, fake, "web")
    await first.stop()

    [second] = chat_adapters(core, core.settings)  # a new process would build just this
    assert isinstance(second, DiscordAdapter)
    try:
        await second.start()
        await fake.wait_ready(count=2)
        ack = next(i for i in custom_ids(alert) if i.startswith("calcifer:ack:"))
        pressed = await fake.push_button(ack, alert["id"], user_id=OPERATOR)
        answer = await answered(fake, pressed)
        await deliver(core, second)  # the engine's edit of the alert, and its reply
    finally:
        await second.stop()

    assert pressed.callback_type == DEFERRED_CHANNEL_MESSAGE and pressed.ephemeral
    assert "acknowledged by Bob Builder" in words(answer)
    incident = await incident_of(core, "web")
    assert incident.acked_at is not None
    edited = fake.message(alert["id"])
    assert edited is not None and "acknowledged by Bob Builder" in words(edited)
    assert not any(i.startswith("calcifer:ack:") for i in custom_ids(edited))


async def test_a_viewer_pressing_acknowledge_is_refused(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    alert = await alert_for(core, connected, fake, "web")
    ack = custom_ids(alert)[0]

    pressed = await fake.push_button(ack, alert["id"], user_id=VIEWER)

    answer = await answered(fake, pressed)
    assert pressed.ephemeral and "Not allowed" in words(answer)
    assert (await incident_of(core, "web")).acked_at is None


async def test_a_429_on_posting_is_retried_by_discord_py_and_posted_once(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    fake.fail_next("POST", f"/channels/{ALERTS}/messages", status=429, retry_after=0.05)

    await alert_for(core, connected, fake, "web")

    assert len(fake.requests_to("POST", f"/channels/{ALERTS}/messages")) == 2
    assert len(posted(fake, ALERTS)) == 1


async def test_a_429_discord_py_will_not_wait_out_goes_back_to_the_outbox(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core, clock: FakeClock
) -> None:
    # Without a Via header discord.py takes a 429 for a Cloudflare ban and gives up.
    fake.fail_next("POST", f"/channels/{ALERTS}/messages", status=429, retry_after=7, via=False)
    endpoint_id = await add_endpoint(core, "web", failures=1)
    await observe(core, endpoint_id, ok=False)

    assert await deliver(core, connected) == 0
    row = await core.db.read(lambda s: s.scalars(select(OutboxMessage)).one())
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.available_at is not None

    clock.advance(timedelta(seconds=8))
    assert await deliver(core, connected) == 1
    assert len(posted(fake, ALERTS)) == 1


async def test_a_retry_after_an_uncertain_attempt_does_not_post_twice(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core, clock: FakeClock
) -> None:
    endpoint_id = await add_endpoint(core, "web", failures=1)
    await observe(core, endpoint_id, ok=False)
    [delivery] = await core.outbox.claim(("discord",))
    await connected.deliver(delivery)  # posted, then the worker "dies" before marking it

    clock.advance(LEASE + timedelta(seconds=1))
    assert await deliver(core, connected) == 1

    assert len(posted(fake, ALERTS)) == 1
    assert len(fake.requests_to("POST", f"/channels/{ALERTS}/messages")) == 2
    row = await core.db.read(lambda s: s.scalars(select(OutboxMessage)).one())
    assert row.status == "sent"


async def test_an_alert_to_a_channel_that_does_not_exist_is_dead_lettered(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    endpoint_id = await add_endpoint(core, "web", failures=1, channel="discord:999")
    await observe(core, endpoint_id, ok=False)

    assert await deliver(core, connected) == 0

    row = await core.db.read(lambda s: s.scalars(select(OutboxMessage)).one())
    assert row.status == "dead" and "404" in (row.last_error or "")


async def test_a_long_message_is_split_within_discords_limits(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core
) -> None:
    text = "\n".join(f"line {i}: " + "x" * 70 for i in range(200))  # about 16,000 characters
    reply = Reply(text, title="A long report", status=Status.WARNING)
    await post(core, reply, "long")

    assert await deliver(core, connected) == 1

    messages = posted(fake, ALERTS)
    assert 2 <= len(messages) <= 5
    assert all(len(m.get("content") or "") <= CONTENT for m in messages)
    assert all(sum(embed_size(e) for e in m["embeds"]) <= EMBED_TOTAL for m in messages)
    shown = "".join(e.get("description", "") for m in messages for e in m["embeds"])
    assert all(f"line {i}: " in shown for i in range(200)), "nothing is lost"


async def test_a_chart_is_attached_and_shown_in_the_embed(
    connected: DiscordAdapter, fake: FakeDiscord, core: Core, clock: FakeClock
) -> None:
    endpoint_id = await add_endpoint(core, "nas")
    for ok in (True, True, False, True):
        await observe(core, endpoint_id, ok)
        clock.advance(timedelta(minutes=1))

    interaction = await fake.push_slash("graph nas 1h", user_id=VIEWER)

    await interaction.responded()
    assert interaction.callback_type == DEFERRED_CHANNEL_MESSAGE
    await fake.wait_for(lambda: bool((interaction.original or {}).get("attachments")))
    assert interaction.original is not None
    [chart] = interaction.original["attachments"]
    assert chart["filename"].endswith(".png")
    assert fake.attachment_content(chart["id"]).startswith(b"\x89PNG")
    [embed] = interaction.original["embeds"]
    assert embed["image"]["url"].endswith(chart["filename"])


# -- start-up, configuration, the command line -----------------------------------------


async def test_a_refused_token_stops_start_up_with_a_clear_message(
    fake: FakeDiscord, core: Core
) -> None:
    message = await start_up_error(core, fake, DISCORD_BOT_TOKEN="revoked.token")

    assert message == REFUSED


async def test_an_unreachable_discord_does_not_stop_start_up(
    fake: FakeDiscord, core: Core, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = {
        "CALCIFER_DISCORD_API_URL": f"http://127.0.0.1:{closed_port}/api/v10",
        "CALCIFER_DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{closed_port}/",
    }
    settings = make_settings("sqlite://", **discord_env(fake, **unreachable))
    adapter = DiscordAdapter(core, settings.discord)
    caplog.set_level(logging.WARNING, "adapters.discord_adapter")
    try:
        async with asyncio.timeout(20):
            await adapter.start()
    finally:
        await adapter.stop()

    assert "cannot reach Discord" in caplog.text
    assert "alerts wait in the outbox" in caplog.text


@pytest.mark.parametrize(
    ("token", "code", "shown"),
    [(BOT_TOKEN, 0, "ok: as calcifer (900)"), ("revoked.token", 1, "invalid auth")],
    ids=["valid", "refused"],
)
async def test_config_check_says_whether_discord_takes_the_token(
    tmp_path: Path, fake: FakeDiscord, token: str, code: int, shown: str
) -> None:
    env = discord_env(fake, DISCORD_BOT_TOKEN=token)

    # In a thread: the fake answers on this test's event loop.
    result = await asyncio.to_thread(calcifer, tmp_path, "config", "check", **env)

    assert result.returncode == code, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("discord "))
    assert shown in line
    assert token not in result.stdout + result.stderr, "secrets stay masked"


async def test_discord_sync_registers_the_command_globally_or_in_one_guild(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    env = discord_env(fake, CALCIFER_DISCORD_GUILDS="")

    globally = await asyncio.to_thread(calcifer, tmp_path, "discord", "sync", **env)
    in_guild = await asyncio.to_thread(
        calcifer, tmp_path, "discord", "sync", "--guild", str(GUILD), **env
    )

    assert globally.returncode == 0, globally.stderr
    assert "globally" in globally.stdout
    assert in_guild.returncode == 0, in_guild.stderr
    assert [c["name"] for c in fake.commands[None]] == ["calcifer"]
    assert [c["name"] for c in fake.commands[GUILD]] == ["calcifer"]


async def test_discord_invite_prints_the_url_with_exactly_the_permissions_needed(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    result = await asyncio.to_thread(calcifer, tmp_path, "discord", "invite", **discord_env(fake))

    assert result.returncode == 0, result.stderr
    url = result.stdout.splitlines()[0]
    assert f"client_id={BOT_ID}" in url and "permissions=117760" in url
    assert "scope=bot+applications.commands" in url


async def test_calcifer_run_connects_to_discord_and_answers(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    with running(tmp_path, **discord_env(fake)) as server:
        await fake.wait_ready(timeout=20)
        await fake.wait_for(lambda: GUILD in fake.commands, timeout=10)
        interaction = await fake.push_slash("whoami", user_id=ADMIN)
        answer = await answered(fake, interaction)
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.proc.wait, 15)

    assert "admin" in words(answer)
    assert code == 0, server.log
    assert "Traceback" not in server.log
    assert BOT_TOKEN not in server.log


async def test_calcifer_run_serves_slack_and_discord_side_by_side(
    tmp_path: Path, fake: FakeDiscord, fake_slack: FakeSlack
) -> None:
    env = {**slack_env(fake_slack), **discord_env(fake)}
    env["CALCIFER_ADMINS"] = f"discord:{ADMIN},slack:U1"

    with running(tmp_path, **env) as server:
        await fake.wait_ready(timeout=20)
        await fake_slack.connected(timeout=15)
        await fake.wait_for(lambda: GUILD in fake.commands, timeout=10)
        on_discord = await answered(fake, await fake.push_slash("whoami", user_id=ADMIN))
        url = fake_slack.response_url()
        await fake_slack.push(
            "slash_commands", slash_command("whoami", user="U1", response_url=url)
        )
        await fake_slack.wait_for(lambda: bool(fake_slack.responses_to(url)))
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.proc.wait, 15)

    assert f"discord:{ADMIN}" in words(on_discord)
    assert "slack:U1" in json.dumps(fake_slack.responses_to(url)[0])
    assert code == 0, server.log


async def test_every_deliverer_is_woken_by_an_alert(core: Core) -> None:
    slack, discord = core.outbox_wake(), core.outbox_wake()
    endpoint_id = await add_endpoint(core, "web", failures=1)

    await observe(core, endpoint_id, ok=False)

    assert slack.is_set() and discord.is_set()
