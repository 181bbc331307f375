"""Notifications: outbox messages to webhooks, e-mail and the services Apprise knows.

Routing (:mod:`calcifer_bot.routing`) decides at enqueue time which
destinations a message goes to; every destination gets its own outbox row.
This integration is the one deliverer of all ``notify:NAME`` rows: it keeps a
rate limit per destination, hands each message to its provider
(:mod:`integrations.notify`) and leaves retries, backoff and dead letters to
the outbox. Destinations of type ``slack`` and ``discord`` are chat channels:
the chat adapters deliver those.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Self

from calcifer_bot.config import CHAT_DESTINATIONS, DestinationSettings, Rate, parse_rate
from calcifer_bot.errors import CalciferError, IntegrationError
from calcifer_bot.outbox import Delivery, Postpone
from calcifer_bot.reply import MessageRef, Reply
from calcifer_bot.routing import NOTIFY
from integrations.base import Connectivity, Integration, Reachability
from integrations.notify import provider_class
from integrations.notify.base import Message, Provider

if TYPE_CHECKING:
    from calcifer_bot.config import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TokenBucket:
    """``rate.count`` messages at once, then one every ``rate.per / rate.count``."""

    rate: Rate
    tokens: float = field(init=False)
    at: datetime | None = None

    def __post_init__(self) -> None:
        self.tokens = float(self.rate.count)

    def take(self, now: datetime) -> float:
        """Take one token; 0 if there was one, else the seconds until there will be."""
        per_token = self.rate.per.total_seconds() / self.rate.count
        if self.at is not None:
            elapsed = max(0.0, (now - self.at).total_seconds())
            self.tokens = min(float(self.rate.count), self.tokens + elapsed / per_token)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * per_token


@dataclass(slots=True)
class Destination:
    name: str
    type: str
    provider: Provider | None  # None: disabled, see ``disabled``
    rate: Rate | None
    disabled: str | None = None
    bucket: TokenBucket | None = field(init=False)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.rate) if self.rate is not None else None

    def describe(self) -> str:
        if self.provider is None:
            return f"{provider_class(self.type).title}: {self.disabled}"
        return self.provider.describe()


def _destination(name: str, settings: DestinationSettings) -> Destination:
    cls = provider_class(settings.type)
    rate = settings.rate
    if rate is None and cls.default_rate:
        rate = parse_rate(cls.default_rate)
    limit = None if rate == "off" else rate
    missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
    if missing:
        hint = f"disabled: install calcifer[{cls.extra}]" if cls.extra else "disabled"
        log.warning("notification destination %s is %s (%s is missing)", name, hint, missing[0])
        return Destination(name, settings.type, None, limit, disabled=hint)
    return Destination(name, settings.type, cls(name, settings.provider_config()), limit)


class NotificationsIntegration(Integration):
    name = "notifications"
    title = "Notifications"

    def __init__(self, destinations: dict[str, Destination] | None = None) -> None:
        self.destinations = destinations or {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            {
                name: _destination(name, dest)
                for name, dest in settings.notifications.destinations.items()
                if dest.type not in CHAT_DESTINATIONS
            }
        )

    @property
    def configured(self) -> bool:
        return bool(self.destinations)

    def get(self, name: str) -> Destination:
        try:
            return self.destinations[name]
        except KeyError:
            raise IntegrationError(
                f"there is no notification destination named {name!r} any more",
                permanent=True,
            ) from None

    async def deliver(self, delivery: Delivery, now: datetime) -> MessageRef | None:
        """Send one ``notify:NAME`` outbox message; the outbox's :data:`Deliver` contract."""
        dest = self.get(delivery.channel)
        if dest.provider is None:
            raise IntegrationError(f"{dest.name} is {dest.disabled}", permanent=True)
        if delivery.op == "update" and not dest.provider.edits:
            return None  # routing sends no edits here; a configuration change may have
        if dest.bucket is not None:
            wait = dest.bucket.take(now)
            if wait > 0:
                raise Postpone(wait)
        message = Message(
            key=delivery.key,
            kind=delivery.kind,
            op=delivery.op,
            reply=delivery.reply,
            labels=delivery.labels or {},
            target=delivery.target.message_id if delivery.target else None,
            retried=delivery.retried,
        )
        posted = await dest.provider.send(message)
        return MessageRef(NOTIFY, dest.name, posted) if posted else None

    async def send_test(self, name: str, reply: Reply, key: str) -> float:
        """Send ``reply`` to one destination now, outside the queue; returns milliseconds."""
        dest = self.get(name)
        if dest.provider is None:
            raise IntegrationError(f"{dest.name} is {dest.disabled}", permanent=True)
        started = time.perf_counter()
        await dest.provider.send(Message(key=key, kind="test", op="post", reply=reply))
        return (time.perf_counter() - started) * 1000

    async def check_destination(self, name: str, seconds: float = 10.0) -> Connectivity:
        dest = self.get(name)
        if dest.provider is None:
            return Connectivity(Reachability.DISABLED, dest.disabled or "")
        try:
            return await asyncio.wait_for(dest.provider.check(), seconds)
        except TimeoutError:
            return Connectivity(Reachability.CANNOT_CONNECT, f"no answer within {seconds:g} s")
        except CalciferError as exc:
            return Connectivity(Reachability.CANNOT_CONNECT, exc.message)

    async def check_connectivity(self) -> Connectivity:
        names = list(self.destinations)
        results = await asyncio.gather(*(self.check_destination(n) for n in names))
        failing = [(n, r) for n, r in zip(names, results, strict=True) if r.failing]
        if not failing:
            return Connectivity(Reachability.OK, f"{len(names)} destinations")
        worst = (
            Reachability.INVALID_AUTH
            if any(r.state is Reachability.INVALID_AUTH for _, r in failing)
            else Reachability.CANNOT_CONNECT
        )
        return Connectivity(worst, "; ".join(f"{n}: {r}" for n, r in failing))
