"""Chat adapters: each a thin translator between a platform and the core.

Native event in, one ``core.dispatch(Command)`` call, native reply out. They
know nothing of monitoring or git.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from calcifer_bot.reply import MessageRef
from integrations.base import Connectivity

if TYPE_CHECKING:
    from calcifer_bot.config import Settings
    from calcifer_bot.core import Core
    from calcifer_bot.outbox import Delivery


class ChatAdapter(Protocol):
    """What ``calcifer run`` needs of a chat platform."""

    platform: str  # also the outbox destination prefix: "slack" for "slack:C123"

    def add_routes(self, app: web.Application) -> None: ...
    async def check_connectivity(self) -> Connectivity: ...
    async def start(self) -> None: ...
    async def deliver(self, delivery: Delivery) -> MessageRef | None: ...
    async def stop(self) -> None: ...


def chat_adapters(core: Core, settings: Settings) -> list[ChatAdapter]:
    """An adapter for each platform whose credentials are set."""
    found: list[ChatAdapter] = []
    if settings.slack.enabled:
        from adapters.slack_adapter import SlackAdapter  # slack-bolt loads only when used

        found.append(SlackAdapter(core, settings.slack))
    if settings.discord.enabled:
        from adapters.discord_adapter import DiscordAdapter  # and discord.py only when used

        found.append(DiscordAdapter(core, settings.discord))
    return found
