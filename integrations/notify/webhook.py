"""A generic JSON webhook: every notification as one documented JSON object.

Like Alertmanager's webhook receiver, the body is Calcifer's own schema
(``"version": 1``) for a receiver someone writes, or a relay. Every request
carries ``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header) with
the same value on every retry of a message, so a receiver can drop duplicates.

Also the home of what every webhook provider shares: URL and timeout checks,
and errors that name the destination and host, never the URL (it holds the token).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from multidict import CIMultiDict
from pydantic import ConfigDict, SecretStr, field_validator

from calcifer_bot import http
from calcifer_bot.errors import IntegrationError
from integrations.base import Connectivity, Reachability
from integrations.notify.base import Message, Provider, ProviderConfig, Timeout

# Validation errors would otherwise echo the input: the URL and headers are secrets.
SECRET_INPUT = ConfigDict(hide_input_in_errors=True)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)


def check_url(value: SecretStr) -> SecretStr:
    """An http or https URL with a host; any host, so relays and test servers work."""
    try:
        parts = urlsplit(value.get_secret_value())
        scheme, host = parts.scheme, parts.hostname
    except ValueError:  # a broken IPv6 literal
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        # Never quote the value: the URL is the credential.
        raise ValueError("expected an http or https URL with a host")
    return value


def host_of(url: SecretStr) -> str:
    try:
        return urlsplit(url.get_secret_value()).hostname or "the server"
    except ValueError:
        return "the server"


def scrub(text: str, url: SecretStr) -> str:
    """``text`` without the URL or the parts of it that carry a token.

    The HTTP chokepoint names only the host; this guards against the odd
    library message that quotes a URL (an invalid redirect target).
    """
    raw = url.get_secret_value()
    parts = urlsplit(raw)
    for secret in (raw, parts.path + ("?" + parts.query if parts.query else ""), parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "…")
    if len(parts.path) > 1:
        text = text.replace(parts.path, "…")
    return text


def failure(
    who: str, exc: IntegrationError, url: SecretStr, detail: str | None = None
) -> IntegrationError:
    """``exc`` as one destination's error: named, scrubbed, just as retryable."""
    message = scrub(f"{who}: {detail or exc.message}", url)
    return IntegrationError(message, permanent=exc.permanent, retry_after=exc.retry_after)


def idempotency_key(key: str) -> str:
    """``key`` as the draft's header value: a Structured Fields String, quotes included.

    sf-string allows printable ASCII only; anything else is percent-encoded,
    which keeps the value the same on every retry.
    """
    printable = "".join(c if " " <= c <= "~" else quote(c, safe="") for c in key)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _jsonable(value: Any) -> Any:
    # Labels are any mapping (Message.labels): a set of tags is no JSON type.
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)  # a datetime or an enum: its text is what a receiver can use


def _answer_id(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict):
        id_ = data.get("id")
        if isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool)):
            return str(id_)
    return None


class Webhook(Provider):
    """POST (or PUT) one JSON object per notification to a URL."""

    type = "webhook"
    title = "Webhook"
    default_rate = None  # a receiver of our own sets no limit we know
    edits = True  # an update is one more object, with op "update" and its target

    class Config(ProviderConfig):
        model_config = SECRET_INPUT

        url: SecretStr
        method: Literal["POST", "PUT"] = "POST"
        headers: dict[str, SecretStr] = {}  # Authorization and the like: secrets too
        timeout: Timeout = timedelta(seconds=10)

        _check_url = field_validator("url")(check_url)

        @field_validator("headers")
        @classmethod
        def _check_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
            for name, secret in value.items():
                if not _TOKEN.fullmatch(name):
                    raise ValueError(f"{name!r} is not a valid header name")
                if any(c in secret.get_secret_value() for c in "\r\n\0"):
                    raise ValueError(f"the value of header {name} contains a line break")
            return value

    config: Config

    @property
    def _who(self) -> str:
        return f"Webhook {self.name}"

    def _headers(self) -> CIMultiDict[str]:
        return CIMultiDict((k, v.get_secret_value()) for k, v in self.config.headers.items())

    async def send(self, message: Message) -> str | None:
        reply = message.reply
        body = {
            "version": 1,
            "key": message.key,
            "event": message.kind,
            "op": message.op,
            "target": message.target,
            "title": reply.title,
            "text": reply.text,
            "status": str(reply.status),
            "fields": [{"name": f.name, "value": f.value} for f in reply.fields],
            "footer": reply.footer,
            "labels": dict(message.labels),
        }
        headers = self._headers()
        # Ours win over configured ones of the same name: the body is JSON, and the
        # key must be the message's or a receiver would drop the wrong duplicates.
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = idempotency_key(message.key)
        try:
            answer = await http.request(
                self.config.method,
                self.config.url.get_secret_value(),
                timeout_s=self.config.timeout.total_seconds(),
                data=json.dumps(body, default=_jsonable).encode(),
                headers=headers,
            )
        except IntegrationError as exc:
            raise failure(self._who, exc, self.config.url) from None
        # Without an id of the receiver's, the key names the original: the outbox
        # sends updates only for a message that send gave an id for.
        return _answer_id(answer.body) or message.key

    async def check(self) -> Connectivity:
        # HEAD posts nothing. Receivers that only take POST answer 404 or 405, which
        # still proves the host reachable; only a refusal of the credentials fails.
        host = host_of(self.config.url)
        try:
            answer = await http.request(
                "HEAD",
                self.config.url.get_secret_value(),
                timeout_s=self.config.timeout.total_seconds(),
                headers=self._headers(),
            )
        except http.HTTPStatusError as exc:
            detail = f"{host} answered HTTP {exc.status}"
            if exc.status in (401, 403):
                return Connectivity(Reachability.INVALID_AUTH, detail)
            if exc.status >= 500:  # up, but not accepting anything now
                return Connectivity(Reachability.CANNOT_CONNECT, detail)
            return Connectivity(Reachability.OK, detail)
        except IntegrationError as exc:
            return Connectivity(Reachability.CANNOT_CONNECT, scrub(exc.message, self.config.url))
        return Connectivity(Reachability.OK, f"{host} answered HTTP {answer.status}")

    def describe(self) -> str:
        return f"{self.title} on {host_of(self.config.url)}"


__all__ = [
    "SECRET_INPUT",
    "Webhook",
    "check_url",
    "failure",
    "host_of",
    "idempotency_key",
    "scrub",
]
