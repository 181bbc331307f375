"""Platform-neutral replies and incoming commands.

Handlers build a :class:`Reply`; each adapter renders it natively (Block Kit,
Discord embeds, plain text). Nothing here knows about Slack or Discord.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Status(StrEnum):
    """Drives the colour or symbol an adapter shows; members in rising severity."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Visibility(StrEnum):
    CHANNEL = "channel"
    EPHEMERAL = "ephemeral"  # only the caller sees it, where the platform allows


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: str
    inline: bool = True


@dataclass(frozen=True, slots=True)
class Button:
    """A button runs ``command`` as if the presser had typed it.

    Role checks therefore apply to button presses exactly as to typed commands.
    ``command=None`` is a plain dismiss (Cancel).
    """

    label: str
    command: str | None
    style: Literal["default", "primary", "danger"] = "default"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a posted message lives, so it can be edited or threaded later."""

    platform: str
    channel: str
    message_id: str
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    title: str | None = None
    status: Status = Status.INFO
    fields: tuple[Field, ...] = ()
    footer: str | None = None
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    # None means "whatever the command declares"; the dispatcher fills it in.
    visibility: Visibility | None = None
    thread: MessageRef | None = None
    edit: MessageRef | None = None

    @property
    def ok(self) -> bool:
        return self.status is not Status.ERROR

    @classmethod
    def error(cls, text: str, *, title: str | None = None) -> Reply:
        return cls(text=text, title=title, status=Status.ERROR, visibility=Visibility.EPHEMERAL)

    def to_dict(self) -> dict[str, Any]:
        """JSON for the outbox. Attachments and message references do not travel."""
        return {
            "text": self.text,
            "title": self.title,
            "status": str(self.status),
            "fields": [[f.name, f.value, f.inline] for f in self.fields],
            "footer": self.footer,
            "buttons": [[b.label, b.command, b.style] for b in self.buttons],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(
            text=data["text"],
            title=data.get("title"),
            status=Status(data.get("status", "info")),
            fields=tuple(Field(n, v, i) for n, v, i in data.get("fields", ())),
            footer=data.get("footer"),
            buttons=tuple(
                Button(label, cmd, style) for label, cmd, style in data.get("buttons", ())
            ),
            visibility=Visibility.CHANNEL,
        )


@dataclass(frozen=True, slots=True)
class Command:
    """One message addressed to Calcifer, as every adapter hands it to the core.

    ``user`` is the platform's own id (``U123``); ``identity`` qualifies it
    (``slack:U123``). ``groups`` carries platform roles the adapter knows of
    (Discord role ids) so the core can map them to Calcifer roles.
    """

    platform: str
    user: str
    channel: str
    text: str
    user_name: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    user_email: str | None = None  # for Git authorship, where the platform tells

    @property
    def identity(self) -> str:
        return f"{self.platform}:{self.user}"
