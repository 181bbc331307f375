"""/healthz and /readyz on a real aiohttp server, a real database and a real scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from calcifer_bot.core import Core
from calcifer_bot.db import Database
from calcifer_bot.web import build_app

# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


@pytest.fixture
async def scheduler() -> AsyncIterator[AsyncIOScheduler]:
    """Not started: a test starts it when it wants a running one."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    yield scheduler
    if scheduler.running:
        scheduler.shutdown(wait=False)


async def get(core: Core, scheduler: AsyncIOScheduler, path: str) -> tuple[int, Any]:
    async with TestClient(TestServer(build_app(core, scheduler))) as client:
        response = await client.get(path)
        return response.status, await response.json()


async def test_healthz_is_ok_even_when_not_ready(core: Core, scheduler: AsyncIOScheduler) -> None:
    assert await get(core, scheduler, "/healthz") == (200, {"status": "ok"})


async def test_readyz_ok_with_database_and_running_scheduler(
    core: Core, scheduler: AsyncIOScheduler
) -> None:
    scheduler.start()

    assert await get(core, scheduler, "/readyz") == (
        200,
        {"status": "ok", "checks": {"database": "ok", "scheduler": "ok"}},
    )


async def test_readyz_unavailable_while_the_scheduler_is_stopped(
    core: Core, scheduler: AsyncIOScheduler
) -> None:
    status, body = await get(core, scheduler, "/readyz")

    assert status == 503
    assert body == {"status": "unavailable", "checks": {"database": "ok", "scheduler": "stopped"}}


async def test_readyz_unavailable_when_the_database_is_unreachable(
    core: Core, scheduler: AsyncIOScheduler
) -> None:
    scheduler.start()
    db = Database(UNREACHABLE)
    try:
        status, body = await get(Core(core.settings, db), scheduler, "/readyz")
    finally:
        db.dispose()

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["scheduler"] == "ok"
    assert body["checks"]["database"] not in ("ok", "timed out")


async def test_metrics_in_prometheus_format(core: Core, scheduler: AsyncIOScheduler) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.conftest import ChatBot

    bot = ChatBot(core)
    await bot.say("endpoint add nas tcp 127.0.0.1:1 --failures 1")
    await bot.say("check nas")  # port 1: refused, so down at once

    async with TestClient(TestServer(build_app(core, scheduler))) as client:
        response = await client.get("/metrics")
        body = await response.text()

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples[("calcifer_endpoint_up", (("endpoint", "nas"), ("kind", "tcp")))] == 0.0
    assert samples[("calcifer_incidents_open", ())] == 1.0
    assert samples[("calcifer_checks_total", (("result", "down"),))] == 1.0
    assert samples[("calcifer_outbox_messages", (("status", "pending"),))] == 1.0
