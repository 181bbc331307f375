"""The fake Slack against the real slack_sdk and slack_bolt: each test proves one protocol fact,
so a wire test failing elsewhere points at the adapter, not at the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakeslack import (
    FakeSlack,
    app_mention,
    block_action,
    event,
    interactive_body,
    signed_headers,
    slash_command,
)


@pytest.fixture
def fake(fake_slack: FakeSlack) -> FakeSlack:
    return fake_slack  # the conftest fixture, by a short name


BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]


@pytest.fixture
def web(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.api_url)


@pytest.fixture
async def socket_client(fake: FakeSlack, web: AsyncWebClient) -> AsyncIterator[SocketModeClient]:
    # The web client's token does not matter: apps.connections.open sends the app token.
    client = SocketModeClient(app_token="xapp-test", web_client=web)
    try:
        yield client
    finally:
        await client.close()


async def _acking_listener(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
    await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


async def test_post_message_decodes_blocks_and_update_edits_in_place(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    posted = await web.chat_postMessage(channel="C1", text="hi", blocks=BLOCKS, thread_ts="1.2")
    await web.chat_update(channel="C1", ts=posted["ts"], text="bye")

    [message] = fake.messages
    assert (message.ts, message.text, message.blocks) == (posted["ts"], "bye", BLOCKS)
    assert (message.thread_ts, message.edited) == ("1.2", 1)
    assert fake.calls_to("chat.postMessage")[0].token == "xoxb-test"


async def test_ts_strictly_increasing(fake: FakeSlack, web: AsyncWebClient) -> None:
    first = await web.chat_postMessage(channel="C1", text="a")
    second = await web.chat_postMessage(channel="C1", text="b")
    assert (first["ts"], second["ts"]) == ("1700000000.000100", "1700000000.000200")


async def test_history_returns_metadata_only_when_asked(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    metadata = {"event_type": "calcifer_reply", "event_payload": {"id": 7}}
    await web.chat_postMessage(channel="C1", text="old")
    await web.chat_postMessage(channel="C1", text="new", metadata=metadata)

    plain = await web.conversations_history(channel="C1")
    rich = await web.conversations_history(channel="C1", include_all_metadata=True, limit=1)

    assert [m["text"] for m in plain["messages"]] == ["new", "old"]
    assert "metadata" not in plain["messages"][0]
    assert rich["messages"][0]["metadata"] == metadata
    assert rich["has_more"] is True


async def test_not_in_channel_until_joined(fake: FakeSlack, web: AsyncWebClient) -> None:
    fake.outside_channels.add("C2")
    with pytest.raises(SlackApiError) as refused:
        await web.chat_postMessage(channel="C2", text="hi")
    await web.conversations_join(channel="C2")
    await web.chat_postMessage(channel="C2", text="hi")

    assert refused.value.response["error"] == "not_in_channel"
    assert [m.channel for m in fake.messages] == ["C2"]


async def test_users_info(fake: FakeSlack, web: AsyncWebClient) -> None:
    alice = await web.users_info(user="U1")
    with pytest.raises(SlackApiError) as unknown:
        await web.users_info(user="U404")

    assert alice["user"]["profile"]["display_name"] == "alice"
    assert unknown.value.response["error"] == "user_not_found"


async def test_wrong_token_is_invalid_auth(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as refused:
        await AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert refused.value.response["error"] == "invalid_auth"


async def test_files_upload_v2_lands_with_its_bytes(fake: FakeSlack, web: AsyncWebClient) -> None:
    done = await web.files_upload_v2(
        channel="C1", thread_ts="1700000000.000100", content=b"png\x00bytes", filename="x.png"
    )

    [uploaded] = fake.files
    assert done["file"]["id"] == uploaded.id
    assert uploaded.content == b"png\x00bytes"
    assert (uploaded.filename, uploaded.title) == ("x.png", "x.png")
    assert (uploaded.channel, uploaded.thread_ts) == ("C1", "1700000000.000100")
    assert [c.method for c in fake.calls] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_429_is_retried_by_the_rate_limit_handler(fake: FakeSlack) -> None:
    # The handler sleeps Retry-After plus up to one second of jitter.
    web = AsyncWebClient(
        token="xoxb-test",
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail("chat.postMessage", status=429, retry_after=0)

    await web.chat_postMessage(channel="C1", text="once")

    assert [c.failed for c in fake.calls_to("chat.postMessage")] == [True, False]
    assert [m.text for m in fake.messages] == ["once"]


async def test_429_without_handler_raises(fake: FakeSlack, web: AsyncWebClient) -> None:
    fake.fail("chat.postMessage", status=429, retry_after=3)

    with pytest.raises(SlackApiError) as limited:
        await web.chat_postMessage(channel="C1", text="lost")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "3"
    assert limited.value.response["error"] == "ratelimited"
    assert fake.messages == []


async def test_response_url_takes_five_posts(fake: FakeSlack) -> None:
    url = fake.response_url()
    hook = AsyncWebhookClient(url)

    statuses = [(await hook.send(text=f"reply {n}")).status_code for n in range(6)]
    refused = await hook.send(text="again")

    assert statuses == [200] * 5 + [404]
    assert refused.body == "used_url"
    assert [p["text"] for p in fake.responses_to(url)] == [f"reply {n}" for n in range(5)]


async def test_socket_mode_envelope_reaches_listener_and_is_acked(
    fake: FakeSlack, socket_client: SocketModeClient
) -> None:
    seen: list[SocketModeRequest] = []

    async def listener(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        seen.append(req)
        await _acking_listener(client, req)

    socket_client.socket_mode_request_listeners.append(listener)
    await socket_client.connect()
    await fake.connected()

    payload = slash_command("status", response_url=fake.response_url())
    ack = await fake.push("slash_commands", payload)

    assert ack.seconds < 1 and ack.payload is None
    assert [(r.type, r.payload) for r in seen] == [("slash_commands", payload)]
    assert fake.calls_to("apps.connections.open")[0].token == "xapp-test"


async def test_socket_mode_client_reconnects_after_a_drop(
    fake: FakeSlack, socket_client: SocketModeClient
) -> None:
    socket_client.socket_mode_request_listeners.append(_acking_listener)
    await socket_client.connect()
    await fake.connected()

    await fake.drop_socket()
    await fake.connected()
    await fake.send_disconnect()
    await fake.connected()
    ack = await fake.push("events_api", event(app_mention("<@UBOT> hi")))

    assert fake.connections == 3
    assert len(fake.calls_to("apps.connections.open")) == 3
    assert ack.seconds < 1


async def test_bolt_routes_the_payload_builders(fake: FakeSlack, web: AsyncWebClient) -> None:
    app = AsyncApp(client=web)
    got: list[str] = []

    @app.command("/calcifer")
    async def command(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(f"command {command['text']}")

    @app.event("app_mention")
    async def mention(event: dict[str, Any]) -> None:
        got.append(f"mention {event['text']}")

    @app.action("calcifer:0")
    async def action(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        got.append(f"action {body['actions'][0]['value']}")

    handler = AsyncSocketModeHandler(app, app_token="xapp-test")
    await handler.connect_async()
    try:
        url = fake.response_url()
        await fake.push("slash_commands", slash_command("status", response_url=url))
        await fake.push("events_api", event(app_mention("<@UBOT> hi")))
        click = block_action("yes", message_ts="1700000000.000100", response_url=url)
        await fake.push("interactive", click)
        await fake.wait_for(lambda: len(got) == 2 and len(fake.responses_to(url)) == 1)
    finally:
        await handler.close_async()

    assert sorted(got) == ["action yes", "mention <@UBOT> hi"]
    assert fake.responses_to(url)[0]["text"] == "command status"
    assert fake.calls_to("auth.test")


async def test_signed_headers_pass_bolt_and_tampering_fails(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    app = AsyncApp(client=web, signing_secret="s3cret")
    clicked: list[str] = []

    @app.action("calcifer:0")
    async def action(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        clicked.append(body["actions"][0]["value"])

    body = interactive_body(block_action("go", message_ts="1.1", response_url=fake.response_url()))
    form = "application/x-www-form-urlencoded"
    good = signed_headers("s3cret", body, content_type=form)
    stale = signed_headers("s3cret", body, timestamp=1_700_000_000, content_type=form)

    ok = await app.async_dispatch(AsyncBoltRequest(body=body, headers=good))
    forged = body.replace("%22go%22", "%22no%22")
    assert forged != body
    tampered = await app.async_dispatch(AsyncBoltRequest(body=forged, headers=good))
    old = await app.async_dispatch(AsyncBoltRequest(body=body, headers=stale))

    assert (ok.status, tampered.status, old.status) == (200, 401, 401)
    assert clicked == ["go"]
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid(body, good["X-Slack-Request-Timestamp"], good["X-Slack-Signature"])
