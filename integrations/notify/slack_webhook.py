"""Slack incoming webhooks: Block Kit messages to the one channel a webhook URL names.

An incoming webhook can only post: no threads, no edits, no file uploads, and
no interactivity for Calcifer's buttons. Slack answers ``200 ok``, or a status
with one error word as the body (``404 no_service``, ``410 channel_is_archived``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

from pydantic import SecretStr, field_validator

from adapters import slack_blocks
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

# What Slack answers a valid webhook for an empty message; nothing is posted.
# The word differs between generations of webhooks.
EMPTY_MESSAGE_WORDS = frozenset({"no_text", "missing_text_or_fallback_or_attachments"})
_WORD = re.compile(r"[a-z][a-z0-9_]{0,63}")
# slack_blocks writes these notes for chat.postMessage; through a webhook the
# continuations are plain posts in the channel and no file can follow.
_NOTES = {
    "Continued in the thread.": "Continued in the next message.",
    "The full output is in the attached file.": "Cut short: the rest is too long for a webhook.",
}


def slack_word(body: bytes) -> str | None:
    """Slack's error word from an answer body; None for anything else (a proxy's page)."""
    text = body[:100].decode("utf-8", errors="replace").strip()
    return text if _WORD.fullmatch(text) else None


def _retell(block: dict[str, Any]) -> dict[str, Any]:
    elements = block.get("elements", ())
    if block.get("type") == "context" and len(elements) == 1:
        text = elements[0].get("text")
        if text in _NOTES:
            return {**block, "elements": [{**elements[0], "text": _NOTES[text]}]}
    return block


class SlackWebhook(Provider):
    """Posts a reply as Block Kit messages through one incoming webhook URL."""

    type = "slack-webhook"
    title = "Slack incoming webhook"
    default_rate = "60/1m"  # Slack allows about one message per second per webhook
    edits = False

    class Config(ProviderConfig):
        model_config = SECRET_INPUT

        url: SecretStr
        timeout: Timeout = timedelta(seconds=10)

        _check_url = field_validator("url")(check_url)

    config: Config

    @property
    def _who(self) -> str:
        return f"Slack webhook {self.name}"

    async def send(self, message: Message) -> None:
        # Buttons would post but could never run: webhooks have no interactivity.
        rendered = slack_blocks.render(replace(message.reply, buttons=()))
        # Files (a chart, or rendered.file with output too long for a few messages)
        # cannot go through an incoming webhook, which takes a message and nothing
        # else: they are dropped. Op "reply" is a new post too: webhooks cannot thread.
        posts = [m.kwargs() for m in rendered.messages]
        posts[0]["blocks"] = [_retell(b) for b in posts[0]["blocks"]]
        for body in posts:
            await self._post(body)

    async def _post(self, body: dict[str, Any]) -> None:
        try:
            await http.request(
                "POST",
                self.config.url.get_secret_value(),
                timeout_s=self.config.timeout.total_seconds(),
                json=body,
            )
        except http.HTTPStatusError as exc:
            raise failure(self._who, exc, self.config.url, self._status(exc)) from None
        except IntegrationError as exc:
            raise failure(self._who, exc, self.config.url) from None

    def _status(self, exc: http.HTTPStatusError) -> str:
        word = slack_word(exc.body)
        detail = f"{host_of(self.config.url)} answered HTTP {exc.status}"
        return f"{detail}: {word}" if word else detail

    async def check(self) -> Connectivity:
        # An empty message is the one request Slack validates without posting anything.
        try:
            await http.request(
                "POST",
                self.config.url.get_secret_value(),
                timeout_s=self.config.timeout.total_seconds(),
                json={},
            )
        except http.HTTPStatusError as exc:
            word = slack_word(exc.body)
            detail = scrub(self._status(exc), self.config.url)
            if exc.status == 400 and word in EMPTY_MESSAGE_WORDS | {"invalid_payload"}:
                return Connectivity(Reachability.OK, "webhook accepted; nothing posted")
            if exc.status in (403, 404, 410):  # revoked, mistyped, channel gone
                return Connectivity(Reachability.INVALID_AUTH, detail)
            return Connectivity(Reachability.CANNOT_CONNECT, detail)
        except IntegrationError as exc:
            return Connectivity(Reachability.CANNOT_CONNECT, scrub(exc.message, self.config.url))
        # Slack refuses an empty message: whatever took it is not an incoming webhook.
        return Connectivity(
            Reachability.CANNOT_CONNECT,
            f"{host_of(self.config.url)} accepted an empty message, which Slack never does",
        )

    def describe(self) -> str:
        return f"{self.title} on {host_of(self.config.url)}"
