"""The Slack, Discord and generic webhook providers against a local server, over real HTTP.

Every request goes through ``calcifer_bot.http`` to ``tests/webhook_server.py`` on
127.0.0.1; the tests check what the service receives (what people would see) and
what the outbox gets back when the service refuses, stalls or limits us.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from calcifer_bot import http
from calcifer_bot.errors import IntegrationError
from calcifer_bot.reply import Attachment, Button, Field, Reply, Status
from integrations.base import Connectivity, Reachability
from integrations.notify import provider_class
from integrations.notify.base import Message, Provider
from integrations.notify.discord_webhook import DiscordWebhook, api_url
from integrations.notify.slack_webhook import SlackWebhook
from integrations.notify.webhook import Webhook
from tests.webhook_server import (
    CHANNEL_ID,
    WEBHOOK_NAME,
    Answer,
    WebhookServer,
    discord_error,
    running_webhook_server,
)

SLACK_TOKEN = "sLaCkT0kenXYZ123"
DISCORD_TOKEN = "d1sc0rdT0ken-ABC_789"
HOOK_TOKEN = "h00kT0kenQRS456"
SLACK_PATH = f"/services/T0001/B0001/{SLACK_TOKEN}"
DISCORD_PATH = f"/api/webhooks/223344556677889900/{DISCORD_TOKEN}"
HOOK_PATH = f"/receiver/{HOOK_TOKEN}"
TOKENS = (SLACK_TOKEN, DISCORD_TOKEN, HOOK_TOKEN)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) + b"\r\n--not-a-boundary\r\n"

ALERT = Reply(
    text="db1 stopped answering: connection refused",
    title="db1 is down",
    status=Status.ERROR,
    fields=(Field("Endpoint", "db1:5432"), Field("Since", "12:00 UTC")),
    footer="alert 17 · ops",
    buttons=(Button("Acknowledge", "ack 17", "primary"), Button("Mute 1h", "mute db1 1h")),
)


def message(
    reply: Reply = ALERT,
    *,
    key: str = "alert:17@notify:ops",
    kind: str = "alert",
    op: Any = "post",
    target: str | None = None,
    labels: dict[str, Any] | None = None,
) -> Message:
    return Message(key=key, kind=kind, op=op, reply=reply, labels=labels or {}, target=target)


def long_text(lines: int) -> str:
    return "\n".join(f"line {i:04d}: replica lag {i * 7} ms on db{i % 9}" for i in range(lines))


def assert_no_secret(text: str) -> None:
    for token in TOKENS:
        assert token not in text, f"a webhook token leaked into: {text!r}"


@pytest.fixture
async def server() -> AsyncIterator[WebhookServer]:
    async with running_webhook_server() as running:
        try:
            yield running
        finally:
            await http.close()


def slack(server: WebhookServer, **config: Any) -> SlackWebhook:
    url = server.kind(SLACK_PATH, "slack")
    return SlackWebhook("ops-slack", SlackWebhook.Config(url=url, timeout="0.3s", **config))


def discord(server: WebhookServer, *, query: str = "", **config: Any) -> DiscordWebhook:
    url = server.kind(DISCORD_PATH, "discord") + query
    return DiscordWebhook("ops-discord", DiscordWebhook.Config(url=url, timeout="0.3s", **config))


def hook(server: WebhookServer, **config: Any) -> Webhook:
    url = server.kind(HOOK_PATH, "json")
    return Webhook("ops-hook", Webhook.Config(url=url, timeout="0.3s", **config))


def nowhere(cls: type[Provider], path: str, port: int) -> Provider:
    """A ``cls`` provider whose URL leads to ``port`` on 127.0.0.1, where nothing listens."""
    return cls("gone", cls.Config.model_validate({"url": f"http://127.0.0.1:{port}{path}"}))


async def refused(send: Awaitable[object]) -> IntegrationError:
    with pytest.raises(IntegrationError) as caught:
        await send
    assert_no_secret(caught.value.message)
    return caught.value


def blocks_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [*body["blocks"], *(b for a in body["attachments"] for b in a["blocks"])]


def texts_of(blocks: list[dict[str, Any]]) -> str:
    found: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            found.append(block["text"]["text"])
        for item in [*block.get("fields", ()), *block.get("elements", ())]:
            if isinstance(item.get("text"), str):
                found.append(item["text"])
    return "\n".join(found)


def test_the_registry_finds_the_three_providers() -> None:
    assert provider_class("slack-webhook") is SlackWebhook
    assert provider_class("discord-webhook") is DiscordWebhook
    assert provider_class("webhook") is Webhook
    assert (SlackWebhook.edits, DiscordWebhook.edits, Webhook.edits) == (False, True, True)
    assert (SlackWebhook.default_rate, DiscordWebhook.default_rate) == ("60/1m", "30/1m")
    assert Webhook.default_rate is None


# --- Slack -----------------------------------------------------------------------------


async def test_slack_alert_arrives_as_block_kit_with_colour_and_fields_but_no_buttons(
    server: WebhookServer,
) -> None:
    assert await slack(server).send(message()) is None

    (got,) = server.on(SLACK_PATH)
    assert got.method == "POST"
    assert got.content_type == "application/json"
    body = got.json()
    assert set(body) == {"text", "blocks", "attachments"}
    assert body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": ":red_circle: db1 is down", "emoji": True},
    }
    assert "db1 stopped answering: connection refused" in texts_of(body["blocks"])
    assert body["attachments"][0]["color"] == "#a30200"
    details = texts_of(body["attachments"][0]["blocks"])
    assert "*Endpoint*\ndb1:5432" in details
    assert "alert 17 · ops" in details
    # Buttons through a webhook could never run a command: none are sent.
    assert all(b["type"] != "actions" for b in blocks_of(body))
    assert "db1 is down" in body["text"]  # the notification's plain-text fallback


async def test_slack_reply_op_is_posted_as_a_new_message_in_the_channel(
    server: WebhookServer,
) -> None:
    await slack(server).send(message(op="reply", target="1700000000.000100"))

    (got,) = server.on(SLACK_PATH)
    assert "thread_ts" not in got.json()
    assert got.json()["blocks"][0]["type"] == "header"


async def test_slack_long_reply_arrives_as_several_posts_in_order_with_nothing_lost(
    server: WebhookServer,
) -> None:
    text = long_text(300)
    await slack(server).send(message(Reply(text=text, title="Replica lag")))

    posts = [r.json() for r in server.on(SLACK_PATH)]
    assert len(posts) >= 3
    shown = "\n".join(texts_of(blocks_of(p)) for p in posts)
    positions = [shown.index(f"line {i:04d}:") for i in range(300)]
    assert positions == sorted(positions)
    # Webhooks cannot thread: the first post must not send people looking for one.
    first_note = texts_of(posts[0]["blocks"])
    assert "thread" not in first_note
    assert "Continued in the next message." in first_note


async def test_slack_reply_with_a_chart_is_still_posted_without_the_file(
    server: WebhookServer,
) -> None:
    chart = Attachment("cpu.png", PNG, "image/png")
    await slack(server).send(message(replace(ALERT, attachments=(chart,))))

    (got,) = server.on(SLACK_PATH)
    assert got.content_type == "application/json"
    assert got.json()["blocks"][0]["text"]["text"] == ":red_circle: db1 is down"


async def test_slack_server_error_is_worth_retrying_and_the_next_send_arrives(
    server: WebhookServer,
) -> None:
    provider = slack(server)
    server.script(SLACK_PATH, Answer(500, body="rollup_error"))

    error = await refused(provider.send(message()))
    assert not error.permanent
    assert error.message == "Slack webhook ops-slack: 127.0.0.1 answered HTTP 500: rollup_error"

    await provider.send(message())
    assert len(server.on(SLACK_PATH)) == 2


async def test_slack_rate_limit_tells_the_outbox_how_long_to_wait(server: WebhookServer) -> None:
    server.script(SLACK_PATH, Answer(429, body="rate_limited", headers={"Retry-After": "7"}))

    error = await refused(slack(server).send(message()))
    assert not error.permanent
    assert error.retry_after == 7.0
    assert "HTTP 429" in error.message


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (404, "no_service"),
        (410, "channel_is_archived"),
        (403, "action_prohibited"),
        (403, "invalid_token"),
        (400, "invalid_payload"),
        (404, "channel_not_found"),
    ],
)
async def test_slack_refusal_is_permanent_and_quotes_slacks_reason(
    server: WebhookServer, status: int, word: str
) -> None:
    server.script(SLACK_PATH, Answer(status, body=word))

    error = await refused(slack(server).send(message()))
    assert error.permanent
    assert error.message == f"Slack webhook ops-slack: 127.0.0.1 answered HTTP {status}: {word}"


async def test_slack_error_page_of_a_proxy_is_not_quoted_as_slacks_reason(
    server: WebhookServer,
) -> None:
    server.script(SLACK_PATH, Answer(502, body="<html><body>Bad gateway</body></html>"))

    error = await refused(slack(server).send(message()))
    assert error.message == "Slack webhook ops-slack: 127.0.0.1 answered HTTP 502"
    assert not error.permanent


async def test_slack_check_posts_an_empty_message_and_reports_the_webhook_usable(
    server: WebhookServer,
) -> None:
    result = await slack(server).check()

    assert result == Connectivity(Reachability.OK, "webhook accepted; nothing posted")
    (got,) = server.on(SLACK_PATH)
    assert got.json() == {}


async def test_slack_check_accepts_the_older_empty_message_answer(server: WebhookServer) -> None:
    server.script(SLACK_PATH, Answer(400, body="missing_text_or_fallback_or_attachments"))

    assert (await slack(server).check()).state is Reachability.OK


@pytest.mark.parametrize(
    ("status", "word"),
    [(404, "no_service"), (403, "invalid_token"), (404, "no_team"), (410, "channel_is_archived")],
)
async def test_slack_check_reports_a_dead_webhook_as_invalid_auth_with_slacks_word(
    server: WebhookServer, status: int, word: str
) -> None:
    server.script(SLACK_PATH, Answer(status, body=word))

    result = await slack(server).check()
    assert result.state is Reachability.INVALID_AUTH
    assert result.detail == f"127.0.0.1 answered HTTP {status}: {word}"


async def test_slack_check_reports_a_server_error_or_an_odd_answer_as_cannot_connect(
    server: WebhookServer,
) -> None:
    server.script(SLACK_PATH, Answer(500, body="rollup_error"), Answer(200, body="ok"))
    provider = slack(server)

    assert (await provider.check()).state is Reachability.CANNOT_CONNECT
    odd = await provider.check()
    assert odd.state is Reachability.CANNOT_CONNECT
    assert "accepted an empty message" in odd.detail


async def test_slack_check_cannot_connect_to_a_closed_port(closed_port: int) -> None:
    try:
        result = await nowhere(SlackWebhook, SLACK_PATH, closed_port).check()
    finally:
        await http.close()
    assert result.state is Reachability.CANNOT_CONNECT
    assert result.detail == "127.0.0.1: connection refused"


def test_slack_description_names_the_host_only() -> None:
    config = SlackWebhook.Config(url=f"https://hooks.slack.com{SLACK_PATH}")
    assert (
        SlackWebhook("ops-slack", config).describe() == "Slack incoming webhook on hooks.slack.com"
    )


# --- Discord ---------------------------------------------------------------------------


async def test_discord_alert_arrives_as_an_embed_that_pings_nobody_and_has_no_buttons(
    server: WebhookServer,
) -> None:
    provider = discord(server, username="Calcifer", avatar_url="https://example.org/c.png")
    posted = await provider.send(message())

    (got,) = server.on(DISCORD_PATH)
    assert got.method == "POST"
    assert got.query == {"wait": "true"}
    assert got.content_type == "application/json"
    body = got.json()
    assert body["allowed_mentions"] == {"parse": []}
    assert (body["username"], body["avatar_url"]) == ("Calcifer", "https://example.org/c.png")
    assert "components" not in body
    (embed,) = body["embeds"]
    assert embed["title"] == "🔴 db1 is down"
    assert embed["description"] == "db1 stopped answering: connection refused"
    assert embed["color"] == 0xA30200
    assert embed["fields"][0] == {"name": "Endpoint", "value": "db1:5432", "inline": True}
    assert embed["footer"] == {"text": "alert 17 · ops"}
    # What send returned is the id of the message people see, for later edits.
    assert posted is not None
    assert server.messages[posted]["embeds"] == body["embeds"]


async def test_discord_keeps_the_query_the_webhook_url_already_has(server: WebhookServer) -> None:
    await discord(server, query="?thread_id=4242").send(message())

    (got,) = server.on(DISCORD_PATH)
    assert got.query == {"thread_id": "4242", "wait": "true"}


async def test_discord_reply_op_is_posted_as_a_new_message(server: WebhookServer) -> None:
    provider = discord(server)
    first = await provider.send(message())
    second = await provider.send(message(op="reply", target=first, kind="ack"))

    assert second is not None and second != first
    assert [r.method for r in server.on(DISCORD_PATH)] == ["POST", "POST"]


async def test_discord_update_edits_the_posted_message_in_place(server: WebhookServer) -> None:
    provider = discord(server, username="Calcifer")
    posted = await provider.send(message())
    assert posted is not None
    resolved = Reply(text="db1 answers again", title="db1 is up", status=Status.OK)

    edited = await provider.send(message(resolved, kind="recovery", op="update", target=posted))

    assert edited == posted
    (patch,) = server.on(f"{DISCORD_PATH}/messages/{posted}")
    assert patch.method == "PATCH"
    assert "username" not in patch.json()  # Discord takes no name on an edit
    assert patch.json()["allowed_mentions"] == {"parse": []}
    shown = server.messages[posted]
    assert shown["embeds"][0]["title"] == "🟢 db1 is up"
    assert shown["embeds"][0]["description"] == "db1 answers again"
    assert len(server.on(DISCORD_PATH)) == 1  # no second message in the channel


async def test_discord_update_of_a_message_discord_does_not_know_is_permanent(
    server: WebhookServer,
) -> None:
    error = await refused(discord(server).send(message(op="update", target="1234567890")))

    assert error.permanent
    assert error.message == "Discord webhook ops-discord: Unknown Message (10008)"


async def test_discord_update_without_a_target_posts_a_new_message(server: WebhookServer) -> None:
    posted = await discord(server).send(message(op="update", target=None))

    assert posted in server.messages
    assert [r.method for r in server.on(DISCORD_PATH)] == ["POST"]


async def test_discord_long_reply_arrives_as_several_messages_in_order_with_nothing_lost(
    server: WebhookServer,
) -> None:
    text = long_text(150)  # plain text: message content, 2000 characters a message
    posted = await discord(server).send(message(Reply(text=text)))

    posts = [r.json() for r in server.on(DISCORD_PATH)]
    assert len(posts) >= 3
    assert "\n".join(p["content"] for p in posts) == text
    assert all(p["allowed_mentions"] == {"parse": []} for p in posts)
    assert posted == min(server.messages, key=int)  # the first message is the one to edit


async def test_discord_chart_is_uploaded_as_multipart_and_shown_in_the_embed(
    server: WebhookServer,
) -> None:
    chart = Attachment("cpu.png", PNG, "image/png")
    posted = await discord(server).send(message(replace(ALERT, attachments=(chart,))))

    (got,) = server.on(DISCORD_PATH)
    assert got.content_type == "multipart/form-data"
    assert [p.name for p in got.parts] == ["payload_json", "files[0]"]
    upload = got.part("files[0]")
    assert (upload.filename, upload.content_type, upload.data) == ("cpu.png", "image/png", PNG)
    payload = got.json()
    assert payload["attachments"] == [{"id": 0, "filename": "cpu.png"}]
    assert payload["embeds"][0]["image"] == {"url": "attachment://cpu.png"}
    assert payload["allowed_mentions"] == {"parse": []}
    assert posted is not None
    assert server.messages[posted]["attachments"][0]["size"] == len(PNG)


async def test_discord_server_error_is_worth_retrying_and_the_next_send_arrives(
    server: WebhookServer,
) -> None:
    provider = discord(server)
    server.script(DISCORD_PATH, Answer(502, body="<html>Bad gateway</html>"))

    error = await refused(provider.send(message()))
    assert not error.permanent
    assert error.message == "Discord webhook ops-discord: 127.0.0.1 answered HTTP 502"

    assert await provider.send(message()) in server.messages


async def test_discord_rate_limit_waits_the_precise_time_from_the_body(
    server: WebhookServer,
) -> None:
    limited = {"message": "You are being rate limited.", "retry_after": 1.234, "global": False}
    server.script(DISCORD_PATH, Answer(429, json=limited, headers={"Retry-After": "2"}))

    error = await refused(discord(server).send(message()))
    assert not error.permanent
    assert error.retry_after == 1.234
    assert (
        error.message == "Discord webhook ops-discord: rate limited by 127.0.0.1; retry in 1.234 s"
    )


async def test_discord_global_rate_limit_says_so(server: WebhookServer) -> None:
    limited = {"message": "You are being rate limited.", "retry_after": 0.5, "global": True}
    server.script(DISCORD_PATH, Answer(429, json=limited))

    error = await refused(discord(server).send(message()))
    assert error.retry_after == 0.5
    assert "(global)" in error.message


async def test_discord_rate_limit_without_a_json_body_falls_back_to_the_header(
    server: WebhookServer,
) -> None:
    server.script(DISCORD_PATH, Answer(429, body="slow down", headers={"Retry-After": "3"}))

    error = await refused(discord(server).send(message()))
    assert error.retry_after == 3.0
    assert not error.permanent


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (discord_error(10015, "Unknown Webhook", 404), "Unknown Webhook (10015)"),
        (discord_error(50027, "Invalid Webhook Token", 401), "Invalid Webhook Token (50027)"),
        (
            Answer(
                400,
                json={
                    "code": 50035,
                    "message": "Invalid Form Body",
                    "errors": {
                        "embeds": {
                            "0": {
                                "description": {
                                    "_errors": [
                                        {
                                            "code": "BASE_TYPE_MAX_LENGTH",
                                            "message": "Must be 4096 or fewer in length.",
                                        }
                                    ]
                                }
                            }
                        }
                    },
                },
            ),
            "Invalid Form Body (50035): embeds.0.description: Must be 4096 or fewer in length.",
        ),
    ],
)
async def test_discord_refusal_is_permanent_and_named_by_discords_code(
    server: WebhookServer, answer: Answer, expected: str
) -> None:
    server.script(DISCORD_PATH, answer)

    error = await refused(discord(server).send(message()))
    assert error.permanent
    assert error.message == f"Discord webhook ops-discord: {expected}"


async def test_discord_check_names_the_webhook_and_its_channel(server: WebhookServer) -> None:
    result = await discord(server).check()

    assert result == Connectivity(
        Reachability.OK, f"posts as {WEBHOOK_NAME} in channel {CHANNEL_ID}"
    )
    (got,) = server.on(DISCORD_PATH)
    assert got.method == "GET"  # nothing posted


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_discord_check_reports_a_revoked_webhook_as_invalid_auth(
    server: WebhookServer, status: int
) -> None:
    server.script(DISCORD_PATH, discord_error(10015, "Unknown Webhook", status))

    result = await discord(server).check()
    assert result == Connectivity(
        Reachability.INVALID_AUTH, "Discord says the webhook does not exist (revoked or mistyped)"
    )


async def test_discord_check_reports_a_server_error_or_a_closed_port_as_cannot_connect(
    server: WebhookServer, closed_port: int
) -> None:
    server.script(DISCORD_PATH, Answer(503, body="upstream unavailable"))
    assert (await discord(server).check()).state is Reachability.CANNOT_CONNECT

    closed = await nowhere(DiscordWebhook, DISCORD_PATH, closed_port).check()
    assert closed == Connectivity(Reachability.CANNOT_CONNECT, "127.0.0.1: connection refused")


def test_discord_webhook_urls_from_discord_settings_use_a_current_api_version() -> None:
    # The copied URL has no version and reaches v6, whose retry_after is in milliseconds.
    pinned = api_url(f"https://discord.com{DISCORD_PATH}?thread_id=7")
    assert str(pinned) == f"https://discord.com/api/v10{DISCORD_PATH[4:]}?thread_id=7"
    versioned = f"https://discord.com/api/v9{DISCORD_PATH[4:]}"
    assert str(api_url(versioned)) == versioned
    relay = f"https://relay.example.org{DISCORD_PATH}"
    assert str(api_url(relay)) == relay


def test_discord_description_names_the_host_only() -> None:
    config = DiscordWebhook.Config(url=f"https://discord.com{DISCORD_PATH}")
    assert DiscordWebhook("ops-discord", config).describe() == "Discord webhook on discord.com"


# --- generic webhook ---------------------------------------------------------------------


async def test_webhook_receiver_gets_the_documented_json_and_headers(server: WebhookServer) -> None:
    provider = hook(server, headers={"Authorization": "Bearer s3cret", "X-Team": "ops"})
    labels = {"endpoint": "db1", "severity": "critical", "tags": frozenset({"prod", "db"})}

    # The receiver gave no id of its own: updates will name the original by its key.
    assert await provider.send(message(labels=labels)) == "alert:17@notify:ops"

    (got,) = server.on(HOOK_PATH)
    assert got.method == "POST"
    assert got.json() == {
        "version": 1,
        "key": "alert:17@notify:ops",
        "event": "alert",
        "op": "post",
        "target": None,
        "title": "db1 is down",
        "text": "db1 stopped answering: connection refused",
        "status": "error",
        "fields": [
            {"name": "Endpoint", "value": "db1:5432"},
            {"name": "Since", "value": "12:00 UTC"},
        ],
        "footer": "alert 17 · ops",
        "labels": {"endpoint": "db1", "severity": "critical", "tags": ["db", "prod"]},
    }
    assert got.headers["authorization"] == "Bearer s3cret"
    assert got.headers["X-Team"] == "ops"
    assert got.headers["Content-Type"] == "application/json"
    # A Structured Fields String, as the IETF draft defines the header.
    assert got.headers["Idempotency-Key"] == '"alert:17@notify:ops"'


async def test_webhook_sends_updates_with_their_target_and_can_use_put(
    server: WebhookServer,
) -> None:
    await hook(server, method="PUT").send(message(op="update", target="evt-9", kind="recovery"))

    (got,) = server.on(HOOK_PATH)
    assert got.method == "PUT"
    assert (got.json()["op"], got.json()["target"], got.json()["event"]) == (
        "update",
        "evt-9",
        "recovery",
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(200, json={"id": "evt-1"}), "evt-1"),
        (Answer(201, json={"id": 42}), "42"),
        (Answer(202, json={"id": True}), "alert:17@notify:ops"),
        (Answer(200, json=["evt-1"]), "alert:17@notify:ops"),
        (Answer(204), "alert:17@notify:ops"),
        (Answer(200, body="accepted"), "alert:17@notify:ops"),
    ],
)
async def test_webhook_later_updates_name_the_receivers_id_or_else_the_message_key(
    server: WebhookServer, answer: Answer, expected: str
) -> None:
    provider = hook(server)
    server.script(HOOK_PATH, answer)

    assert await provider.send(message()) == expected


async def test_webhook_retry_of_a_message_carries_the_same_idempotency_key(
    server: WebhookServer,
) -> None:
    provider = hook(server)
    server.script(HOOK_PATH, Answer(503, body="try later"))
    first = message(key="alert:18@notify:ops-hook")

    error = await refused(provider.send(first))
    assert not error.permanent
    await provider.send(replace(first, retried=True))

    keys = [r.headers["Idempotency-Key"] for r in server.on(HOOK_PATH)]
    assert keys == ['"alert:18@notify:ops-hook"'] * 2
    other = message(key="alert:19@notify:ops-hook")
    await provider.send(other)
    assert server.on(HOOK_PATH)[-1].headers["Idempotency-Key"] == '"alert:19@notify:ops-hook"'


async def test_webhook_configured_header_cannot_replace_the_idempotency_key(
    server: WebhookServer,
) -> None:
    await hook(server, headers={"idempotency-key": "fixed"}).send(message())

    (got,) = server.on(HOOK_PATH)
    assert got.headers.getall("Idempotency-Key") == ['"alert:17@notify:ops"']


@pytest.mark.parametrize(
    ("answer", "permanent", "retry_after"),
    [
        (Answer(500, body="boom"), False, None),
        (Answer(429, body="slow down", headers={"Retry-After": "12"}), False, 12.0),
        (Answer(408, body="request timeout"), False, None),
        (Answer(404, body="no such receiver"), True, None),
        (Answer(401, body="bad token"), True, None),
        (Answer(422, json={"error": "unknown event"}), True, None),
    ],
)
async def test_webhook_failure_is_retried_only_when_it_can_heal(
    server: WebhookServer, answer: Answer, permanent: bool, retry_after: float | None
) -> None:
    server.script(HOOK_PATH, answer)

    error = await refused(hook(server).send(message()))
    assert error.permanent is permanent
    assert error.retry_after == retry_after
    assert error.message.startswith(f"Webhook ops-hook: 127.0.0.1 answered HTTP {answer.status}")


@pytest.mark.parametrize(
    ("make", "path", "who"),
    [
        (slack, SLACK_PATH, "Slack webhook ops-slack"),
        (discord, DISCORD_PATH, "Discord webhook ops-discord"),
        (hook, HOOK_PATH, "Webhook ops-hook"),
    ],
)
async def test_a_server_that_never_answers_fails_fast_and_is_worth_retrying(
    server: WebhookServer,
    make: Callable[[WebhookServer], Provider],
    path: str,
    who: str,
) -> None:
    provider = make(server)
    server.script(path, Answer(delay=30))

    started = time.monotonic()
    sending = asyncio.create_task(provider.send(message()))
    await server.wait_for(1, path)  # it did arrive: the server is what stays silent
    error = await refused(sending)
    assert time.monotonic() - started < 2.0
    assert not error.permanent
    assert error.message == f"{who}: 127.0.0.1 did not answer within 0.3 s"


async def test_webhook_check_sends_head_with_the_configured_headers(server: WebhookServer) -> None:
    provider = hook(server, headers={"Authorization": "Bearer s3cret"})
    server.script(HOOK_PATH, Answer(200), Answer(405, body="use POST"))

    assert await provider.check() == Connectivity(Reachability.OK, "127.0.0.1 answered HTTP 200")
    assert await provider.check() == Connectivity(Reachability.OK, "127.0.0.1 answered HTTP 405")
    got = server.on(HOOK_PATH)
    assert [r.method for r in got] == ["HEAD", "HEAD"]
    assert got[0].headers["Authorization"] == "Bearer s3cret"
    assert "Idempotency-Key" not in got[0].headers


@pytest.mark.parametrize("status", [401, 403])
async def test_webhook_check_reports_refused_credentials_as_invalid_auth(
    server: WebhookServer, status: int
) -> None:
    server.script(HOOK_PATH, Answer(status, body="no"))

    result = await hook(server).check()
    assert result == Connectivity(Reachability.INVALID_AUTH, f"127.0.0.1 answered HTTP {status}")


async def test_webhook_check_reports_a_failing_or_absent_receiver_as_cannot_connect(
    server: WebhookServer, closed_port: int
) -> None:
    server.script(HOOK_PATH, Answer(503, body="down for maintenance"))
    assert (await hook(server).check()).state is Reachability.CANNOT_CONNECT

    closed = await nowhere(Webhook, HOOK_PATH, closed_port).check()
    assert closed == Connectivity(Reachability.CANNOT_CONNECT, "127.0.0.1: connection refused")


def test_webhook_description_names_the_host_only() -> None:
    config = Webhook.Config(url=f"https://alerts.example.org{HOOK_PATH}")
    assert Webhook("ops-hook", config).describe() == "Webhook on alerts.example.org"


# --- secrets and configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "path"), [(slack, SLACK_PATH), (discord, DISCORD_PATH), (hook, HOOK_PATH)]
)
async def test_no_error_check_or_description_reveals_the_webhook_url(
    server: WebhookServer,
    make: Callable[[WebhookServer], Provider],
    path: str,
    closed_port: int,
) -> None:
    provider = make(server)
    server.script(
        path,
        Answer(500, body=f"internal error at {path}"),
        Answer(404, body="no_service"),
        Answer(delay=30),
        Answer(500, body="down"),
    )
    seen = [provider.describe(), provider.title]
    for _ in range(3):
        seen.append((await refused(provider.send(message()))).message)
    seen.append((await provider.check()).detail)
    gone = nowhere(type(provider), path, closed_port)
    seen.append((await refused(gone.send(message()))).message)
    seen.append((await gone.check()).detail)
    seen.append(repr(provider.config))

    for text in seen:
        assert_no_secret(text)


@pytest.mark.parametrize("cls", [SlackWebhook, DiscordWebhook, Webhook])
@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"url": f"ftp://files.example.org{HOOK_PATH}"}, "url"),
        ({"url": f"https:///{HOOK_TOKEN}"}, "url"),
        ({"url": HOOK_TOKEN}, "url"),
        ({"url": f"https://h.example.org/{HOOK_TOKEN}", "chanel": "#ops"}, "chanel"),
        ({"url": f"https://h.example.org/{HOOK_TOKEN}", "timeout": "0s"}, "timeout"),
        ({"url": f"https://h.example.org/{HOOK_TOKEN}", "timeout": 0}, "timeout"),
        ({}, "url"),
    ],
)
def test_bad_configuration_is_refused_naming_the_setting_but_not_the_url(
    cls: type[Provider], settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        cls.Config.model_validate(settings)

    assert [err["loc"] for err in caught.value.errors()] == [(field,)]
    assert field in str(caught.value)
    assert HOOK_TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"method": "GET"}, "method"),
        ({"headers": {"Bad Header": "x"}}, "headers"),
        ({"headers": {"X-Evil": "a\r\nInjected: yes"}}, "headers"),
    ],
)
def test_bad_generic_webhook_settings_are_refused(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Webhook.Config(url="https://h.example.org/hook", **settings)
    assert caught.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"username": "Discord alerts"}, "username"),
        ({"username": ""}, "username"),
        ({"avatar_url": "file:///etc/passwd"}, "avatar_url"),
    ],
)
def test_discord_settings_discord_would_refuse_on_every_message_are_refused_at_load(
    settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        DiscordWebhook.Config(url="https://discord.com/api/webhooks/1/t", **settings)
    assert caught.value.errors()[0]["loc"] == (field,)


# --- the test server itself ----------------------------------------------------------------


async def test_the_server_answers_json_as_discord_py_requires_and_scripts_before_defaults(
    server: WebhookServer,
) -> None:
    url = server.kind(DISCORD_PATH, "discord")
    server.script(DISCORD_PATH, discord_error(10015, "Unknown Webhook", 404))

    with pytest.raises(http.HTTPStatusError) as caught:
        await http.request("GET", url)
    assert caught.value.status == 404
    answer = await http.request("GET", url)  # the script is used up: the default answers
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["channel_id"] == CHANNEL_ID
    with pytest.raises(http.HTTPStatusError, match="HTTP 404"):
        await http.request("POST", server.url_for("/nowhere"), json={})
    assert [r.path for r in await server.wait_for(3)] == [DISCORD_PATH, DISCORD_PATH, "/nowhere"]


async def test_the_server_says_how_many_requests_never_came(server: WebhookServer) -> None:
    with pytest.raises(AssertionError, match=r"0 of 1 requests arrived within 0\.05 s"):
        await server.wait_for(1, HOOK_PATH, timeout=0.05)
