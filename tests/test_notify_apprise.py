"""Apprise through its real JSON plugin (``json://``) to a local aiohttp endpoint:
what arrives, how a failure reads, and that the URL's secrets stay out of it."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from calcifer_bot.errors import ConfigError, IntegrationError
from calcifer_bot.reply import Button, Field, Reply, Status
from integrations.base import Reachability
from integrations.notify import provider_class
from integrations.notify.apprise_url import AppriseURL
from integrations.notify.base import Message
from tests.fakeslack import PROXY_VARIABLES
from tests.localhttp import serve

USER, PASSWORD = "alertbot", "hunter2-very-secret"


@dataclass
class Hook:
    """What the endpoint received, and what it answers."""

    port: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)
    status: int = 200


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Apprise posts with requests, which would send even 127.0.0.1 through a proxy.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    hook = Hook()

    async def receive(request: web.Request) -> web.Response:
        hook.posts.append(await request.json())
        hook.authorization.append(request.headers.get("Authorization"))
        if hook.status >= 400:
            return web.Response(status=hook.status, text="boom")
        return web.json_response({"ok": True}, status=hook.status)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner, _ = await serve(app)
    hook.port = runner.addresses[0][1]
    yield hook
    await runner.cleanup()


def apprise_url(url: str, **settings: Any) -> AppriseURL:
    return AppriseURL("ops-json", AppriseURL.Config.model_validate({"url": url, **settings}))


def note(reply: Reply) -> Message:
    return Message(key="alert:17@notify:ops-json", kind="alert", op="post", reply=reply)


ALERT = Reply(
    title="web is down",
    text="**web** has been down for `5m`.",
    status=Status.ERROR,
    fields=(Field("Endpoint", "web"), Field("Target", "10.0.0.5:443")),
    footer="Calcifer · alert 17",
    buttons=(Button("Ack", "ack 17"), Button("Cancel", None)),
)


async def test_the_notification_arrives_as_markdown(hook: Hook) -> None:
    provider = apprise_url(f"json://127.0.0.1:{hook.port}/hook")
    await provider.send(note(ALERT))

    [post] = hook.posts
    assert post["title"] == "web is down"
    assert post["message"] == (
        "**web** has been down for `5m`.\n\n"
        "**Endpoint:** web\n**Target:** 10.0.0.5:443\n\n"
        "In chat: `ack 17`\n\n"
        "_Calcifer · alert 17_"
    )
    assert post["type"] == "failure"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.ERROR, "failure"),
        (Status.WARNING, "warning"),
        (Status.OK, "success"),
        (Status.INFO, "info"),
    ],
)
async def test_the_type_follows_the_status(hook: Hook, status: Status, expected: str) -> None:
    await apprise_url(f"json://127.0.0.1:{hook.port}/hook").send(
        note(Reply(text="x", status=status))
    )

    assert hook.posts[0]["type"] == expected
    assert hook.posts[0]["title"] == ""


async def test_a_refusal_is_transient_explained_and_keeps_the_url_secret(hook: Hook) -> None:
    hook.status = 500
    provider = apprise_url(f"json://{USER}:{PASSWORD}@127.0.0.1:{hook.port}/hook")
    with pytest.raises(IntegrationError) as caught:
        await provider.send(note(ALERT))

    # The credentials reached the endpoint, so they were there to leak.
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert hook.authorization == [f"Basic {credentials}"]
    message = caught.value.message
    assert not caught.value.permanent
    assert message.startswith("Apprise ops-json: JSON did not take the notification: ")
    assert "error=500" in message
    for secret in (USER, PASSWORD, "/hook", "json://"):
        assert secret not in message


async def test_nothing_listening_is_transient(closed_port: int) -> None:
    with pytest.raises(IntegrationError) as caught:
        await apprise_url(f"json://127.0.0.1:{closed_port}/hook").send(note(ALERT))

    assert not caught.value.permanent
    assert "connection error" in caught.value.message.lower()


async def test_a_silent_server_gives_up_after_the_timeout(silent_port: int) -> None:
    provider = apprise_url(f"json://127.0.0.1:{silent_port}/hook", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(IntegrationError) as caught:
        await provider.send(note(ALERT))

    assert time.monotonic() - started < 3  # Apprise's own read timeout is 4 s
    assert not caught.value.permanent
    assert caught.value.message == "Apprise ops-json: JSON did not answer within 0.5s"


def test_an_unknown_scheme_names_only_the_scheme() -> None:
    with pytest.raises(ConfigError) as caught:
        apprise_url(f"nope://{USER}:{PASSWORD}@hooks.example.org/T0KEN")

    assert caught.value.message == "Apprise ops-json: Apprise does not know the URL scheme nope://"


def test_a_url_its_plugin_refuses_names_the_service() -> None:
    with pytest.raises(ConfigError) as caught:
        apprise_url("tgram://not-a-bot-token/12345")

    message = caught.value.message
    assert message.startswith("Apprise ops-json: Apprise cannot use this tgram:// URL for Telegram")
    assert "not-a-bot-token" not in message and "12345" not in message


async def test_check_names_the_service_and_sends_nothing(hook: Hook) -> None:
    provider = apprise_url(f"json://127.0.0.1:{hook.port}/hook")
    result = await provider.check()

    assert result.state is Reachability.OK
    assert result.detail == (
        "JSON (json://); reachability is only known by sending: `notify test ops-json`"
    )
    assert hook.posts == []


def test_describe_shows_service_and_scheme_only() -> None:
    secure = apprise_url(f"jsons://{USER}:{PASSWORD}@hooks.example.org/T0KEN")
    assert secure.describe() == "Apprise: JSON (jsons://)"


def test_the_url_needs_a_scheme_and_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        AppriseURL.Config.model_validate({"url": "hooks.example.org/T0KEN"})
    assert "scheme://" in str(caught.value)
    assert "T0KEN" not in str(caught.value)
    with pytest.raises(ValidationError, match="above zero"):
        AppriseURL.Config.model_validate({"url": "json://localhost", "timeout": 0})


def test_the_registry_finds_it_and_the_module_needs_no_apprise() -> None:
    assert provider_class("apprise") is AppriseURL
    assert AppriseURL.requires == ("apprise",) and AppriseURL.extra == "notify"
    # Without the extra installed Calcifer still starts: only methods import apprise.
    probe = "import sys, integrations.notify.apprise_url; print('apprise' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "False"
