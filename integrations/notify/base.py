"""What a notification provider is: a config model, ``send``, ``check``.

One module per service, one class per module, registered by one line in
:data:`integrations.notify.PROVIDERS`. A provider knows how to reach its
service and nothing of routing, queues or retries: the notifications
integration hands it one :class:`Message` at a time and the outbox retries
whatever it raises.

Errors: raise :class:`~calcifer_bot.errors.IntegrationError` with
``permanent=True`` when trying again cannot help (refused credentials, a
webhook that no longer exists, a refused recipient) and with ``retry_after``
when the service said how long to wait. Messages name the host, never a URL:
webhook URLs carry their token.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from calcifer_bot.config import Duration
from calcifer_bot.reply import Reply
from integrations.base import Connectivity

Op = Literal["post", "update", "reply"]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("expected a duration above zero")
    return value


# How long one call to the service may take: "10s", "0.5s".
Timeout = Annotated[Duration, AfterValidator(_positive)]


class ProviderConfig(BaseModel):
    """A destination's own settings (``[notifications.destinations.NAME]``).

    The keys every destination has (``type``, ``rate``) are taken out before
    a provider's model sees the table, so unknown keys are errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Message:
    """One outbox message for one destination."""

    key: str  # idempotency key, the same on every retry ("alert:17@notify:ops")
    kind: str  # alert, recovery, reminder, ack, mute, flapping, info, update, work-new, test…
    op: Op  # post a new message, edit ``target``, or answer in ``target``'s thread
    reply: Reply
    # What routing matched on: endpoint, service, group, tags, severity, event.
    labels: Mapping[str, Any] = field(default_factory=dict)
    # For update and reply: what ``send`` returned when the original was posted here.
    target: str | None = None
    # An earlier attempt may have reached the service (it failed, or its worker died).
    retried: bool = False


class Provider(ABC):
    """Base class: subclasses set the class variables and implement ``send`` and ``check``."""

    type: ClassVar[str]  # the ``type`` in configuration: "discord-webhook"
    title: ClassVar[str]  # for people: "Discord webhook"
    Config: ClassVar[builtins.type[ProviderConfig]]  # builtins: ``type`` is a field here
    # Whether ``send`` can change an earlier message (op "update"). Updates are
    # not sent to a provider that cannot; replies then arrive as new messages.
    edits: ClassVar[bool] = False
    # Messages per period unless the destination sets ``rate``: the service's own limit.
    default_rate: ClassVar[str | None] = "30/1m"
    # Modules of an optional extra the provider imports lazily (inside its methods):
    # without them its destinations are disabled, with the install hint.
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def send(self, message: Message) -> str | None:
        """Deliver ``message``; return an id for what was posted (edits, threads) or None."""

    @abstractmethod
    async def check(self) -> Connectivity:
        """The cheapest call that proves the destination usable, sending nothing to people."""

    def describe(self) -> str:
        """Where messages go, without secrets: "Discord webhook on discord.com"."""
        return self.title
