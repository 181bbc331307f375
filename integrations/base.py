"""What every integration is: five methods, one class per file."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from calcifer_bot.config import Settings


class Reachability(StrEnum):
    OK = "ok"
    CANNOT_CONNECT = "cannot connect"
    INVALID_AUTH = "invalid auth"
    NOT_CONFIGURED = "not configured"
    DISABLED = "disabled"  # an optional extra is not installed


@dataclass(frozen=True, slots=True)
class Connectivity:
    """The answer of ``check_connectivity()``; truthy when the service is usable."""

    state: Reachability
    detail: str = ""

    def __bool__(self) -> bool:
        return self.state is Reachability.OK

    @property
    def failing(self) -> bool:
        """Set up but not answering: what `config check` and `integrations` complain of.

        One that is not configured, or whose extra is not installed, is a choice.
        """
        return self.state in (Reachability.CANNOT_CONNECT, Reachability.INVALID_AUTH)

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else str(self.state)


class Integration:
    """Base class. Subclasses set ``name``/``title`` and override what they need.

    ``requires`` lists importable modules of an optional extra; when one is
    missing the integration reports itself disabled with the install hint
    instead of failing at import time, so modules must import them lazily.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    extra: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    @property
    def configured(self) -> bool:
        return True

    async def check_connectivity(self) -> Connectivity:
        """The cheapest authenticated call, with a timeout."""
        return Connectivity(Reachability.OK)

    async def start(self) -> None:
        """Open sessions, schedule jobs: called once the event loop runs."""

    async def close(self) -> None:
        """Release what ``start`` opened."""
