"""Start-up and shutdown of the main job: storage, scheduler, HTTP, adapters."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import SQLAlchemyError

import integrations
from adapters import chat_adapters
from adapters.console import ConsoleAdapter
from calcifer_bot import http
from calcifer_bot.aio import blocking
from calcifer_bot.config import Settings
from calcifer_bot.core import Clock, Core, utcnow
from calcifer_bot.db import Database
from calcifer_bot.endpoints import definitions_from_config, sync_from_config
from calcifer_bot.errors import CalciferError
from calcifer_bot.outbox import Deliver, run_deliveries
from calcifer_bot.routing import NOTIFY
from calcifer_bot.web import build_app
from integrations.notifications import NotificationsIntegration

log = logging.getLogger(__name__)
DRAIN_SECONDS = 10.0  # how long shutdown waits for messages being sent


def history_file() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "calcifer" / "chat_history"


@asynccontextmanager
async def open_core(settings: Settings, clock: Clock = utcnow) -> AsyncIterator[Core]:
    """The core on a database migrated to the newest schema; closed on leaving."""
    db = Database(settings.database_url)
    try:
        await blocking(db.upgrade)
    except SQLAlchemyError as exc:
        db.dispose()
        where = db.url.render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise CalciferError(f"cannot open the database {where}: {reason}") from None
    integrations.configure(settings)
    try:
        # Built now, not on first use: a destination Apprise refuses is fatal at start.
        integrations.get("notifications")
        yield Core(settings, db, clock=clock)
    finally:
        await integrations.close_all()
        await http.close()
        await blocking(db.dispose)


async def sync_endpoints(core: Core) -> None:
    """Make the endpoints declared in the TOML file match the database."""
    defs = definitions_from_config(core.settings.endpoints)
    now = core.clock()
    for change in await core.db.write(lambda s: sync_from_config(s, defs, now)):
        log.info("endpoints from the configuration: %s", change)


async def run(settings: Settings, *, terminal: bool) -> None:
    """The main job; returns after SIGINT/SIGTERM (or Ctrl-D on the console).

    The console adapter runs when no chat platform is configured and stdin is
    a terminal (``terminal``).
    """
    async with open_core(settings) as core:
        await sync_endpoints(core)
        await _serve(core, settings, terminal)


async def _serve(core: Core, settings: Settings, terminal: bool) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    chats = chat_adapters(core, settings)
    app = build_app(core, scheduler)
    for chat in chats:
        chat.add_routes(app)
    runner = web.AppRunner(app, shutdown_timeout=3.0)
    # Before the "listening" line: whoever acts on it may send a signal at once.
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    count = await core.scheduler.load()
    log.info("monitoring %d endpoints", count)
    waits: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    background: list[asyncio.Task[Any]] = []
    stop_delivering = asyncio.Event()

    def deliver_to(deliver: Deliver, platform: str) -> None:
        background.append(
            asyncio.create_task(
                run_deliveries(
                    core.outbox,
                    deliver,
                    (platform,),
                    wake=core.outbox_wake(),
                    stop=stop_delivering,
                )
            )
        )

    try:
        core.scheduler.start(scheduler)
        scheduler.start()
        await runner.setup()
        await _listen(runner, settings)
        for chat in chats:
            await chat.start()
            deliver_to(chat.deliver, chat.platform)
        if terminal and not chats:
            console = ConsoleAdapter(core)
            waits.append(
                asyncio.create_task(console.run_interactive(history_file(), ctrl_c_exits=True))
            )
            deliver_to(console.deliver, "console")
        elif not chats:
            log.info("no chat credentials and stdin is not a terminal: running without chat")
        notifier = cast(NotificationsIntegration, integrations.get("notifications"))
        if notifier.configured:
            deliver_to(lambda d: notifier.deliver(d, core.clock()), NOTIFY)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
    finally:
        # Sends under way finish (cutting one off is how a message goes out twice);
        # whatever is still waiting stays in the outbox for the next start.
        stop_delivering.set()
        core.wake_deliverers()
        if background:
            await asyncio.wait(background, timeout=DRAIN_SECONDS)
        for task in waits + background:
            task.cancel()
        await asyncio.gather(*waits, *background, return_exceptions=True)
        for chat in chats:
            await chat.stop()
        if scheduler.running:
            scheduler.shutdown(wait=False)
        await core.scheduler.stop()
        await core.outbox.release()
        await runner.cleanup()


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    site = web.TCPSite(runner, settings.http.host, settings.http.port)
    try:
        await site.start()
    except OSError as exc:  # port taken, address not ours, unknown host name
        where = f"{settings.http.host}:{settings.http.port}"
        raise CalciferError(
            f"cannot start the HTTP server on {where}: {exc.strerror or exc}"
        ) from None
    for host, port, *_ in runner.addresses:
        log.info("HTTP server listening on http://%s:%d", host, port)
