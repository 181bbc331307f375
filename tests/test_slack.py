"""The Slack adapter end to end: real slack-bolt and slack_sdk against tests/fakeslack.py.

The adapter is built the way ``calcifer run`` builds it (``chat_adapters`` from
settings read from an environment); only the Web API URL and the secrets are
the test's. Alerts come from the real engine and outbox on a real database.
Nothing is mocked; the one substitution is the pacing clock in the pacing test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select

from adapters import chat_adapters
from adapters.slack_adapter import Pacer, SlackAdapter, from_slack
from adapters.slack_blocks import BLOCKS, COLOURS, MESSAGE_CHARS, SECTION_TEXT
from calcifer_bot.core import Core
from calcifer_bot.errors import ConfigError
from calcifer_bot.models import AuditEntry, Endpoint, Incident, OutboxMessage
from calcifer_bot.outbox import LEASE, Outbox, deliver_pending
from calcifer_bot.reply import Status
from calcifer_bot.web import build_app
from tests import conftest
from tests.conftest import FakeClock, make_settings, observe
from tests.fakeslack import (
    Ack,
    FakeSlack,
    Message,
    app_mention,
    block_action,
    direct_message,
    event,
    form_body,
    signed_headers,
    slash_command,
)
from tests.localhttp import serve
from tests.test_cli import calcifer, running

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ADMIN, OPERATOR, VIEWER = "U1", "U2", "U3"  # alice, bob, vera in the fake


@pytest.fixture
def fake(fake_slack: FakeSlack) -> FakeSlack:
    return fake_slack  # the conftest fixture, by a short name


def slack_env(fake: FakeSlack) -> dict[str, str]:
    return {
        "CALCIFER_ADMINS": f"slack:{ADMIN}",
        "CALCIFER_OPERATORS": f"slack:{OPERATOR}",
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "CALCIFER_SLACK_API_URL": fake.api_url,
    }


@pytest.fixture
def settings_env(fake: FakeSlack) -> dict[str, str]:
    return slack_env(fake)


@pytest.fixture
async def slack(core: Core) -> AsyncIterator[SlackAdapter]:
    [adapter] = chat_adapters(core, core.settings)
    assert isinstance(adapter, SlackAdapter)
    adapter.pacer = Pacer(0)  # pacing has a test of its own
    yield adapter
    await adapter.stop()


@pytest.fixture
async def socket(slack: SlackAdapter, fake: FakeSlack) -> SlackAdapter:
    await slack.start()
    await fake.connected()
    return slack


@pytest.fixture
async def events_url(core: Core, slack: SlackAdapter) -> AsyncIterator[str]:
    """Calcifer's own HTTP server with the adapter's route, as in HTTP mode."""

    app = build_app(core, AsyncIOScheduler())
    slack.add_routes(app)
    runner, base = await serve(app)
    yield f"{base}/slack/events"
    await runner.cleanup()


async def add_endpoint(core: Core, name: str, **fields: Any) -> int:
    return await conftest.add_endpoint(core, name, **{"channel": "slack:C1", **fields})


async def deliver(core: Core, slack: SlackAdapter) -> int:
    return await deliver_pending(core.outbox, slack.deliver, ("slack",))


async def alert_for(core: Core, slack: SlackAdapter, fake: FakeSlack, name: str) -> Message:
    """An endpoint that goes down once, its alert delivered to C1."""
    endpoint_id = await add_endpoint(core, name, failures=1, successes=1)
    await observe(core, endpoint_id, ok=False)
    assert await deliver(core, slack) == 1
    [alert] = [m for m in fake.messages if m.thread_ts is None]
    return alert


async def press(fake: FakeSlack, alert: Message, command: str, user: str) -> tuple[Ack, str]:
    """Press the button of ``alert`` that runs ``command``; the ack and the response_url."""
    url = fake.response_url()
    action = block_action(command, user=user, channel="C1", message_ts=alert.ts, response_url=url)
    ack = await fake.push("interactive", action)
    await fake.wait_for(lambda: bool(fake.responses_to(url)))
    return ack, url


def texts(message: dict[str, Any] | Message) -> str:
    """Everything a person reads in a message: text, blocks, attachments."""
    if isinstance(message, Message):
        message = {"text": message.text, "blocks": message.blocks, "att": message.attachments}
    return json.dumps(message, ensure_ascii=False)


def button_values(message: Message) -> list[str]:
    blocks = [b for a in message.attachments or [] for b in a.get("blocks", [])]
    return [e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


async def audit_count(core: Core) -> int:
    return await core.db.read(lambda s: s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


# -- slash commands -------------------------------------------------------------


async def test_slash_command_in_socket_mode_is_acked_at_once_and_answered_privately(
    socket: SlackAdapter, fake: FakeSlack
) -> None:
    url = fake.response_url()

    ack = await fake.push(
        "slash_commands", slash_command("whoami", user=OPERATOR, response_url=url)
    )

    assert ack.seconds < 1.0, "Slack gives up after 3 s; the ack comes before any work"
    await fake.wait_for(lambda: bool(fake.responses_to(url)))
    [answer] = fake.responses_to(url)
    assert answer["response_type"] == "ephemeral"
    assert "slack:U2" in texts(answer) and "operator" in texts(answer)
    assert "bob" in texts(answer), "the name comes from users.info"
    assert not fake.messages, "an ephemeral answer is not posted in the channel"


async def test_a_channel_command_is_posted_in_the_channel(
    socket: SlackAdapter, fake: FakeSlack
) -> None:
    url = fake.response_url()

    await fake.push("slash_commands", slash_command("status", channel="C9", response_url=url))

    await fake.wait_for(lambda: bool(fake.messages))
    [posted] = fake.messages
    assert posted.channel == "C9" and posted.thread_ts is None
    assert posted.blocks and posted.blocks[0]["type"] == "header"
    assert "Calcifer status" in posted.blocks[0]["text"]["text"]
    assert not fake.responses_to(url)


async def test_in_a_channel_calcifer_is_not_in_the_slash_command_still_answers(
    socket: SlackAdapter, fake: FakeSlack
) -> None:
    fake.outside_channels.add("C5")
    url = fake.response_url()

    await fake.push("slash_commands", slash_command("status", channel="C5", response_url=url))

    await fake.wait_for(lambda: bool(fake.responses_to(url)))
    [answer] = fake.responses_to(url)
    assert answer["response_type"] == "in_channel", "the response_url needs no membership"
    assert not fake.messages


async def test_a_slow_command_shows_working_then_the_answer(
    socket: SlackAdapter, fake: FakeSlack, core: Core, closed_port: int
) -> None:
    await add_endpoint(core, "web", target=f"127.0.0.1:{closed_port}")
    url = fake.response_url()

    await fake.push("slash_commands", slash_command("check web", user=OPERATOR, response_url=url))

    await fake.wait_for(lambda: bool(fake.messages))
    working, *rest = fake.responses_to(url)
    assert "Working on `check web`" in working["text"]
    assert [r.get("delete_original") for r in rest] == [True], "it makes way for the answer"
    [answer] = fake.messages
    assert answer.channel == "C1" and "web: down" in texts(answer)
    assert "connection refused" in texts(answer)


async def test_slash_command_over_http_with_a_valid_signature(
    events_url: str, fake: FakeSlack
) -> None:
    url = fake.response_url()
    body = form_body(slash_command("whoami", user=ADMIN, response_url=url))
    headers = signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")

    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.post(events_url, data=body, headers=headers) as response:
            assert response.status == 200
        assert time.monotonic() - started < 1.0

    await fake.wait_for(lambda: bool(fake.responses_to(url)))
    assert "admin" in texts(fake.responses_to(url)[0])


@pytest.mark.parametrize("how", ["wrong secret", "tampered body", "stale", "unsigned"])
async def test_a_bad_signature_gets_401_and_nothing_runs(
    events_url: str, fake: FakeSlack, core: Core, how: str
) -> None:
    url = fake.response_url()
    body = form_body(slash_command("role grant slack:U3 admin --yes", response_url=url))
    kind = "application/x-www-form-urlencoded"
    headers = {
        "wrong secret": lambda: signed_headers("not-the-secret", body, content_type=kind),
        "tampered body": lambda: signed_headers(
            SECRET, body.replace("U3", "U4"), content_type=kind
        ),
        "stale": lambda: signed_headers(
            SECRET, body, timestamp=int(time.time()) - 6 * 60, content_type=kind
        ),
        "unsigned": lambda: {"Content-Type": kind},
    }[how]()

    async with (
        aiohttp.ClientSession() as session,
        session.post(events_url, data=body, headers=headers) as response,
    ):
        assert response.status == 401

    await asyncio.sleep(0.1)  # anything wrongly started would have reached the fake by now
    assert not fake.responses_to(url)
    assert await audit_count(core) == 0, "no command ran"


# -- mentions and direct messages -------------------------------------------------


async def test_a_mention_is_answered_in_its_thread(socket: SlackAdapter, fake: FakeSlack) -> None:
    mention = app_mention("<@UBOT> status", user=ADMIN, channel="C1", ts="1700000100.000100")

    await fake.push("events_api", event(mention))

    await fake.wait_for(lambda: bool(fake.messages))
    [answer] = fake.messages
    assert answer.channel == "C1" and answer.thread_ts == "1700000100.000100"


async def test_an_ephemeral_answer_to_a_mention_is_private_in_the_thread(
    socket: SlackAdapter, fake: FakeSlack
) -> None:
    mention = app_mention("<@UBOT> whoami", user=VIEWER, channel="C1", ts="1700000100.000100")

    await fake.push("events_api", event(mention))

    await fake.wait_for(lambda: bool(fake.ephemerals))
    [answer] = fake.ephemerals
    assert answer["user"] == VIEWER and answer["thread_ts"] == "1700000100.000100"
    assert "viewer" in texts(answer)
    assert not fake.messages


async def test_a_direct_message_needs_no_prefix(socket: SlackAdapter, fake: FakeSlack) -> None:
    await fake.push("events_api", event(direct_message("whoami", user=ADMIN, channel="D1")))

    await fake.wait_for(lambda: bool(fake.messages))
    [answer] = fake.messages
    assert answer.channel == "D1", "in a DM there is nobody to hide the answer from"
    assert "slack:U1" in texts(answer)


async def test_a_long_answer_is_split_within_slacks_limits(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    names = [f"host-{i:03d}-with-a-longish-name" for i in range(150)]
    for name in names:
        await add_endpoint(core, name)

    await fake.push("events_api", event(direct_message("endpoint list", user=ADMIN)))

    await fake.wait_for(
        lambda: (len(fake.messages) >= 2 and fake.files == []) or len(fake.files) > 0
    )
    await asyncio.sleep(0.2)  # the continuations follow the first message
    first, *rest = fake.messages
    assert rest, "150 endpoints do not fit one message"
    assert all(m.thread_ts == first.ts for m in rest), "the rest goes in the first one's thread"
    for message in fake.messages:
        blocks = (message.blocks or []) + [
            b for a in message.attachments or [] for b in a.get("blocks", [])
        ]
        assert len(blocks) <= BLOCKS
        sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
        assert all(len(s) <= SECTION_TEXT for s in sections)
        assert sum(map(len, sections)) <= MESSAGE_CHARS
    everything = "".join(texts(m) for m in fake.messages)
    assert all(name in everything for name in names), "nothing is lost in the split"


def test_slack_markup_becomes_calcifers_grammar() -> None:
    assert from_slack("<@UBOT> role grant <@U42|bob> operator", "UBOT") == (
        "role grant slack:U42 operator"
    )
    assert from_slack("endpoint add web http <https://example.org/health> --channel <#C7|ops>") == (
        "endpoint add web http https://example.org/health --channel slack:C7"
    )
    assert from_slack("mute web 1h &lt;b&gt; &amp; <!here>") == "mute web 1h <b> & @here"


# -- alerts -----------------------------------------------------------------------


async def test_a_down_alert_then_recovery_in_its_thread_with_the_original_resolved(
    slack: SlackAdapter, fake: FakeSlack, core: Core, clock: FakeClock
) -> None:
    alert = await alert_for(core, slack, fake, "nas")

    assert alert.channel == "C1"
    assert "nas is down" in texts(alert) and "connection refused" in texts(alert)
    assert alert.attachments and alert.attachments[0]["color"] == COLOURS[Status.ERROR]
    assert button_values(alert) == ["ack 1", "mute nas 1h", "check nas"]

    clock.advance(timedelta(minutes=12))
    [incident_id] = await core.db.read(lambda s: list(s.scalars(select(Incident.id))))
    endpoint_id = await core.db.read(lambda s: s.get(Incident, incident_id).endpoint_id)
    await observe(core, endpoint_id, ok=True)
    await deliver(core, slack)

    [recovery] = [m for m in fake.messages if m.thread_ts is not None]
    assert recovery.thread_ts == alert.ts and "nas is back up" in texts(recovery)
    assert alert.edited == 1
    assert "Resolved: nas was down for 12" in texts(alert)
    assert alert.attachments and alert.attachments[0]["color"] == COLOURS[Status.OK]
    assert button_values(alert) == [], "a resolved alert has nothing left to press"


async def test_the_acknowledge_button_acks_and_the_alert_shows_who(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    alert = await alert_for(core, socket, fake, "nas")

    ack, url = await press(fake, alert, "ack 1", OPERATOR)

    assert ack.seconds < 1.0
    [private] = fake.responses_to(url)
    assert private["response_type"] == "ephemeral" and private["replace_original"] is False
    assert "acknowledged by bob" in texts(private)
    await deliver(core, socket)
    [note] = [m for m in fake.messages if m.thread_ts == alert.ts]
    assert "Acknowledged by bob" in texts(note)
    assert "acknowledged by bob" in texts(alert), "the alert itself says who is on it"
    assert button_values(alert) == ["mute nas 1h", "check nas"]


async def test_the_mute_button_says_who_muted_in_the_alert(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    alert = await alert_for(core, socket, fake, "nas")

    await press(fake, alert, "mute nas 1h", OPERATOR)

    await deliver(core, socket)
    assert "muted by bob until" in texts(alert)
    [note] = [m for m in fake.messages if m.thread_ts == alert.ts]
    assert "Muted by bob" in texts(note)


async def test_a_viewer_pressing_acknowledge_is_refused_and_nothing_changes(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    alert = await alert_for(core, socket, fake, "nas")

    _, url = await press(fake, alert, "ack 1", VIEWER)

    [refusal] = fake.responses_to(url)
    assert refusal["response_type"] == "ephemeral"
    assert "Not allowed" in texts(refusal) and "operator" in texts(refusal)
    acked = await core.db.read(lambda s: s.get(Incident, 1).acked_at)
    assert acked is None
    assert await deliver(core, socket) == 0 and alert.edited == 0


async def test_a_viewer_typing_an_admin_command_is_refused(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    await add_endpoint(core, "nas")
    url = fake.response_url()

    await fake.push(
        "slash_commands", slash_command("endpoint remove nas --yes", user=VIEWER, response_url=url)
    )

    await fake.wait_for(lambda: bool(fake.responses_to(url)))
    assert "Not allowed" in texts(fake.responses_to(url)[0])
    assert await core.db.read(lambda s: s.scalar(select(func.count()).select_from(Incident))) == 0
    assert not fake.messages


async def removal_question(
    fake: FakeSlack, core: Core
) -> tuple[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``endpoint remove nas`` asked; its response_url and the Confirm and Cancel buttons."""
    await add_endpoint(core, "nas")
    url = fake.response_url()
    await fake.push("slash_commands", slash_command("endpoint remove nas", response_url=url))
    await fake.wait_for(lambda: bool(fake.responses_to(url)))
    [question] = fake.responses_to(url)
    [actions] = [b for b in question["attachments"][0]["blocks"] if b["type"] == "actions"]
    confirm, cancel = actions["elements"]
    assert (confirm["text"]["text"], cancel["text"]["text"]) == ("Confirm", "Cancel")
    return url, (confirm, cancel)


async def test_confirm_button_runs_the_command_and_posts_the_result(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    url, (confirm, _) = await removal_question(fake, core)

    await fake.push(
        "interactive",
        block_action(
            confirm["value"], user=ADMIN, message_ts="1", response_url=url, is_ephemeral=True
        ),
    )

    await fake.wait_for(lambda: bool(fake.messages))
    assert fake.responses_to(url)[1]["delete_original"] is True
    assert "Removed nas" in texts(fake.messages[0])


async def test_cancel_takes_the_question_away_and_runs_nothing(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    url, (_, cancel) = await removal_question(fake, core)
    assert "value" not in cancel, "Cancel runs nothing"

    await fake.push(
        "interactive",
        block_action(
            "",
            action_id=cancel["action_id"],
            user=ADMIN,
            message_ts="1",
            response_url=url,
            is_ephemeral=True,
        ),
    )

    await fake.wait_for(lambda: len(fake.responses_to(url)) == 2)
    assert fake.responses_to(url)[1]["delete_original"] is True
    assert await core.db.read(lambda s: s.scalar(select(func.count()).select_from(Endpoint))) == 1


async def test_a_429_is_retried_and_the_alert_delivered_once(
    slack: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    fake.fail("chat.postMessage", status=429, retry_after=0)

    await alert_for(core, slack, fake, "nas")

    posts = fake.calls_to("chat.postMessage")
    assert [c.failed for c in posts] == [True, False], "slack_sdk's handler retried it"
    assert len(fake.messages) == 1


async def test_a_lasting_429_leaves_the_alert_in_the_outbox_until_slack_takes_it(
    slack: SlackAdapter, fake: FakeSlack, core: Core, clock: FakeClock
) -> None:
    fake.fail("chat.postMessage", status=429, retry_after=0, times=3)
    endpoint_id = await add_endpoint(core, "nas", failures=1)
    await observe(core, endpoint_id, ok=False)

    assert await deliver(core, slack) == 0
    assert not fake.messages
    row = await core.db.read(lambda s: s.scalars(select(OutboxMessage)).one())
    assert row.status == "pending" and row.attempts == 1 and "ratelimited" in row.last_error

    clock.advance(timedelta(minutes=5))
    assert await deliver(core, slack) == 1
    assert await deliver(core, slack) == 0
    assert len(fake.messages) == 1, "delivered exactly once"


async def test_an_alert_posted_just_before_a_crash_is_not_posted_again(
    slack: SlackAdapter, fake: FakeSlack, core: Core, clock: FakeClock
) -> None:
    endpoint_id = await add_endpoint(core, "nas", failures=1)
    await observe(core, endpoint_id, ok=False)
    [delivery] = await core.outbox.claim(("slack",))
    await slack.deliver(delivery)  # posted; the process dies before marking it sent

    clock.advance(LEASE + timedelta(seconds=1))
    restarted = Outbox(core.db, clock, worker="after-restart")
    [again] = await restarted.claim(("slack",))
    posted = await slack.deliver(again)

    assert again.retried
    assert len(fake.calls_to("chat.postMessage")) == 1 and len(fake.messages) == 1
    assert posted is not None and posted.message_id == fake.messages[0].ts


async def test_without_the_history_scope_a_retried_alert_is_still_posted(
    slack: SlackAdapter, fake: FakeSlack, core: Core, clock: FakeClock
) -> None:
    fake.fail("chat.postMessage", status=500, error="internal_error")
    fake.fail("conversations.history", error="missing_scope")
    endpoint_id = await add_endpoint(core, "nas", failures=1)
    await observe(core, endpoint_id, ok=False)
    assert await deliver(core, slack) == 0

    clock.advance(timedelta(minutes=5))
    assert await deliver(core, slack) == 1

    assert len(fake.messages) == 1
    assert fake.calls_to("conversations.history"), "it did look before posting again"


async def test_an_alert_channel_calcifer_is_not_in_is_joined(
    slack: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    fake.outside_channels.add("C1")

    await alert_for(core, slack, fake, "nas")

    assert [c.args["channel"] for c in fake.calls_to("conversations.join")] == ["C1"]


async def test_an_alert_for_a_channel_that_does_not_exist_is_dead_lettered_at_once(
    slack: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    fake.missing_channels.add("C404")
    endpoint_id = await add_endpoint(core, "nas", failures=1, channel="slack:C404")
    await observe(core, endpoint_id, ok=False)

    assert await deliver(core, slack) == 0

    row = await core.db.read(lambda s: s.scalars(select(OutboxMessage)).one())
    assert row.status == "dead" and "channel_not_found" in row.last_error


async def test_posts_to_one_channel_are_paced_one_a_second() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(1.0, clock=lambda: now[0], sleep=sleep)
    for channel in ("C1", "C1", "C2", "C1"):
        await pacer.wait(channel)

    assert slept == [1.0, 1.0], "C1 waits its turn; C2 does not wait for C1"


# -- files, people, start-up ------------------------------------------------------


async def test_a_chart_asked_for_in_a_mention_is_uploaded_into_the_thread(
    socket: SlackAdapter, fake: FakeSlack, core: Core, clock: FakeClock
) -> None:
    endpoint_id = await add_endpoint(core, "nas")
    for ok in (True, True, False, True):
        await observe(core, endpoint_id, ok)
        clock.advance(timedelta(minutes=1))
    mention = app_mention("<@UBOT> graph nas 1h", user=VIEWER, ts="1700000100.000100")

    await fake.push("events_api", event(mention))

    await fake.wait_for(lambda: bool(fake.files))
    [answer] = fake.messages
    assert answer.thread_ts == "1700000100.000100"
    assert answer.edited == 1, "graph is slow: its working note is replaced by the answer"
    assert "nas: latency over 1h" in texts(answer)
    [chart] = fake.files
    assert chart.thread_ts == "1700000100.000100" and chart.channel == "C1"
    assert chart.content.startswith(b"\x89PNG")


async def test_a_private_file_goes_to_the_callers_direct_messages(
    socket: SlackAdapter, fake: FakeSlack, core: Core
) -> None:
    await add_endpoint(core, "nas")
    url = fake.response_url()

    await fake.push("slash_commands", slash_command("doc nas", user=OPERATOR, response_url=url))

    await fake.wait_for(lambda: bool(fake.files))
    [file] = fake.files
    assert file.channel == "DU2" and file.filename == "endpoint-nas.md"
    assert b"nas" in file.content
    assert fake.responses_to(url)[0]["response_type"] == "ephemeral"


async def test_names_are_looked_up_once_and_cached(socket: SlackAdapter, fake: FakeSlack) -> None:
    for _ in range(3):
        url = fake.response_url()
        await fake.push("slash_commands", slash_command("whoami", user=OPERATOR, response_url=url))
        await fake.wait_for(lambda url=url: bool(fake.responses_to(url)))

    assert len(fake.calls_to("users.info")) == 1


async def test_a_refused_bot_token_stops_start_up_with_a_clear_message(
    fake: FakeSlack, core: Core
) -> None:
    settings = make_settings("sqlite://", **{**slack_env(fake), "SLACK_BOT_TOKEN": "xoxb-revoked"})
    adapter = SlackAdapter(core, settings.slack)

    with pytest.raises(ConfigError, match=r"SLACK_BOT_TOKEN was refused by Slack \(invalid_auth\)"):
        await adapter.start()
    await adapter.stop()


def test_slack_needs_a_transport(core: Core) -> None:
    settings = make_settings("sqlite://", SLACK_BOT_TOKEN="xoxb-1")
    with pytest.raises(ConfigError, match="neither SLACK_APP_TOKEN"):
        SlackAdapter(core, settings.slack)


async def test_calcifer_run_connects_to_slack_and_answers(tmp_path: Path, fake: FakeSlack) -> None:
    with running(tmp_path, **slack_env(fake)) as server:
        await fake.connected(timeout=15)
        url = fake.response_url()
        await fake.push("slash_commands", slash_command("whoami", user=ADMIN, response_url=url))
        await fake.wait_for(lambda: bool(fake.responses_to(url)))
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.proc.wait, 15)

    assert "admin" in texts(fake.responses_to(url)[0])
    assert code == 0, server.log
    assert "Traceback" not in server.log
    assert "no slack adapter" not in server.log


@pytest.mark.parametrize(
    ("token", "code", "shown"),
    [("xoxb-test", 0, "ok: as calcifer in Test"), ("xoxb-revoked", 1, "invalid auth")],
    ids=["valid", "refused"],
)
async def test_config_check_says_whether_slack_takes_the_token(
    tmp_path: Path, fake: FakeSlack, token: str, code: int, shown: str
) -> None:
    env = {**slack_env(fake), "SLACK_BOT_TOKEN": token}

    # In a thread: the fake answers on this test's event loop.
    result = await asyncio.to_thread(calcifer, tmp_path, "config", "check", **env)

    assert result.returncode == code, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("slack "))
    assert shown in line
    assert token not in result.stdout + result.stderr, "secrets stay masked"
