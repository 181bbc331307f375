"""When checks run: spread, exact intervals, no pile-up, phase kept across restarts."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select

from calcifer_bot.core import Core
from calcifer_bot.endpoints import Definition, build
from calcifer_bot.models import CheckResult, Endpoint
from calcifer_bot.scheduler import Scheduler
from tests.conftest import FakeClock


async def add_many(core: Core, clock: FakeClock, count: int, **fields: Any) -> None:
    fields.setdefault("target", "127.0.0.1:1")  # refused at once

    def run(session: Any) -> None:
        rows = []
        for n in range(count):
            ep = build(
                Definition(name=f"ep{n}", type="tcp", **fields),
                session,
                clock(),
                source="chat",
            )
            rows.append(
                {c.key: getattr(ep, c.key) for c in Endpoint.__table__.columns if c.key != "id"}
            )
        session.execute(insert(Endpoint), rows)

    await core.db.write(run)


async def test_first_runs_are_spread_over_the_interval(core: Core, clock: FakeClock) -> None:
    await add_many(core, clock, 600)

    assert await core.scheduler.load() == 600

    start = clock().timestamp()
    per_second = Counter(int(due - start) for due in core.scheduler._due.values())
    assert set(per_second) <= set(range(60))
    assert max(per_second.values()) <= 20  # 10 a second on average, never a burst


async def test_an_endpoint_is_checked_every_interval_not_a_tick_later(
    core: Core, clock: FakeClock
) -> None:
    await add_many(core, clock, 1)
    await core.scheduler.load()
    [due] = core.scheduler._due.values()
    clock.now = clock.now.fromtimestamp(due, clock.now.tzinfo) + timedelta(milliseconds=300)

    await core.scheduler.tick(wait=True)

    [next_due] = core.scheduler._due.values()
    assert next_due - due == 10  # refused at once: re-checked at the retry interval, exactly


async def test_a_slow_check_is_never_started_twice(core: Core, clock: FakeClock) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts into the backlog, never answers
    port = silent.getsockname()[1]
    try:

        def run(session: Any) -> None:
            session.add(
                build(
                    Definition(
                        name="slow",
                        type="http",
                        target=f"http://127.0.0.1:{port}/",
                        interval=timedelta(seconds=1),
                        timeout=timedelta(seconds=1),
                    ),
                    session,
                    clock(),
                    source="chat",
                )
            )

        await core.db.write(run)
        await core.scheduler.load()
        for _ in range(5):  # five ticks while the first check is still waiting for an answer
            clock.advance(timedelta(seconds=1))
            await core.scheduler.tick()
        assert len(core.scheduler._tasks) == 1
        await asyncio.gather(*core.scheduler._tasks)
        await core.scheduler.flush()
    finally:
        silent.close()

    results = await core.db.read(lambda s: list(s.scalars(select(CheckResult.error))))
    assert results == ["timed out after 1 s"]


async def test_a_restart_keeps_each_endpoints_phase(core: Core, clock: FakeClock) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    try:
        await add_many(core, clock, 50, target=f"127.0.0.1:{listening.getsockname()[1]}")
        await core.scheduler.load()
        for _ in range(61):
            clock.advance(timedelta(seconds=1))
            await core.scheduler.tick(wait=True)
    finally:
        listening.close()
    before = dict(core.scheduler._due)
    checked = await core.db.read(lambda s: s.scalar(select(func.count()).select_from(CheckResult)))
    assert checked >= 50  # each once, the earliest twice

    clock.advance(timedelta(minutes=5, seconds=30))  # down for a while, then started again
    restarted = Scheduler(core.engine, clock)
    await restarted.load()

    for endpoint_id, due in restarted._due.items():
        assert due >= clock().timestamp()
        drift = (due - before[endpoint_id]) % 60
        assert min(drift, 60 - drift) < 1.0  # the same second of the minute as before
    assert len({int(d) for d in restarted._due.values()}) > 20  # still spread, not one burst
