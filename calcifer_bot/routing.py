"""Which destinations a message goes to: the ``[[notifications.routes]]`` rules.

A message carries labels (the endpoint, its service, group, tags and severity,
and the event: alert, recovery, …). Every route whose ``match`` fits adds its
destinations; when none fits, ``default`` does. The message also goes to its
chat channel, as before routing existed. Pure: no I/O, so the alert engine can
route inside its database transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from calcifer_bot.config import CHAT_DESTINATIONS, NotificationSettings

if TYPE_CHECKING:
    from calcifer_bot.models import Endpoint

NOTIFY = "notify"  # the outbox platform of every non-chat destination: "notify:ops-mail"


@dataclass(frozen=True, slots=True)
class Labels:
    """What routes match on."""

    event: str  # alert, recovery, reminder, ack, mute, flapping, info, update, work-new, …
    endpoint: str | None = None
    service: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()
    severity: str = "info"

    def values(self, key: str) -> tuple[str, ...]:
        if key == "tag":
            return self.tags
        value = getattr(self, key)
        return () if value is None else (value,)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "endpoint": self.endpoint,
            "service": self.service,
            "group": self.group,
            "tags": list(self.tags),
            "severity": self.severity,
        }


def endpoint_labels(ep: Endpoint, event: str) -> Labels:
    return Labels(
        event=event,
        endpoint=ep.name,
        service=ep.service,
        group=ep.group_name,
        tags=tuple(ep.tags or ()),
        severity=ep.severity,
    )


@dataclass(frozen=True, slots=True)
class Route:
    match: tuple[tuple[str, tuple[str, ...]], ...]
    to: tuple[str, ...]

    def matches(self, labels: Labels) -> bool:
        return all(
            any(fnmatchcase(value, p) for value in labels.values(key) for p in patterns)
            for key, patterns in self.match
        )

    def __str__(self) -> str:
        def one(key: str, patterns: tuple[str, ...]) -> str:
            return f"{key}={'|'.join(patterns)}"

        return " and ".join(one(k, p) for k, p in self.match) or "everything"


@dataclass(frozen=True, slots=True)
class Routes:
    routes: tuple[Route, ...] = ()
    default: tuple[str, ...] = ()
    # destination name -> outbox destination: "notify:ops-mail", or "slack:C1" through the bot
    addresses: Mapping[str, str] = field(default_factory=dict)
    # outbox destinations that can edit what they posted (updates go only there)
    editable: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: NotificationSettings) -> Routes:
        from integrations.notify import provider_class

        addresses: dict[str, str] = {}
        editable: set[str] = set()
        for name, dest in settings.destinations.items():
            if dest.type in CHAT_DESTINATIONS:
                address = f"{dest.type}:{dest.channel}"
                editable.add(address)
            else:
                address = f"{NOTIFY}:{name}"
                if provider_class(dest.type).edits:
                    editable.add(address)
            addresses[name] = address
        routes = tuple(Route(tuple(r.match.items()), r.to) for r in settings.routes)
        return cls(routes, settings.default, addresses, frozenset(editable))

    def names_for(self, labels: Labels) -> list[str]:
        """Destination names, in configuration order, each once."""
        names = [n for r in self.routes if r.matches(labels) for n in r.to] or list(self.default)
        return list(dict.fromkeys(names))

    def destinations(self, labels: Labels) -> list[str]:
        """Outbox destinations, each once."""
        return list(dict.fromkeys(self.addresses[n] for n in self.names_for(labels)))
