"""When checks run: one due-queue for every endpoint, driven by an APScheduler job.

One APScheduler job ticks once a second and starts the checks that are due
from a heap, rather than one APScheduler job per endpoint: at 10,000
endpoints that keeps the scheduler's own bookkeeping out of the way
(``benchmarks/bench_scheduler.py`` measures both). An endpoint that is still
being checked is never started again (a slow check cannot pile up behind
itself), first runs are spread over each endpoint's interval, and results are
written in one transaction per tick.

Everything reads time from the injected clock, so tests drive it with
``await scheduler.tick(wait=True)`` and a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import select
from sqlalchemy.orm import Session

import integrations
from calcifer_bot import history
from calcifer_bot.engine import Engine, Observation
from calcifer_bot.models import Endpoint
from integrations.monitoring import Result, Target, push_result

log = logging.getLogger(__name__)

GOLDEN = 0.6180339887498949  # spreads first runs evenly whatever the ids are
HOUSEKEEPING = timedelta(seconds=10)
ROLLUP = timedelta(minutes=5)


@dataclass(slots=True)
class Planned:
    id: int
    target: Target | None  # None: a push endpoint, judged by its heartbeats
    interval_s: float
    last_push_at: datetime | None = None


# Only what planning needs: 10,000 full ORM rows would cost ~40 MB at start.
_PLAN_COLUMNS = (
    Endpoint.id, Endpoint.kind, Endpoint.target, Endpoint.port, Endpoint.timeout_s,
    Endpoint.options, Endpoint.interval_s, Endpoint.last_push_at, Endpoint.last_checked_at,
)  # fmt: skip


def _plan(ep: Any) -> Planned:
    target = None
    if ep.kind != "push":
        target = Target.from_stored(ep.kind, ep.target, ep.port, ep.timeout_s, ep.options)
    return Planned(ep.id, target, ep.interval_s, ep.last_push_at)


class Scheduler:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock
        self.planned: dict[int, Planned] = {}
        self._heap: list[tuple[float, int]] = []
        # The live entry per endpoint; other heap entries for it are stale.
        self._due: dict[int, float] = {}
        self._started: dict[int, float] = {}  # due time of the checks running now
        self._running: set[int] = set()
        self._results: list[Observation] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(engine.settings.monitoring.concurrency)
        self._next_housekeeping: datetime | None = None
        self._next_rollup: datetime | None = None
        self._tick_lock = asyncio.Lock()
        self.counts = {"up": 0, "down": 0}  # checks run by this process, for /metrics

    # -- what to check ------------------------------------------------------

    async def load(self) -> int:
        """Read every endpoint and plan its first check; returns how many."""
        rows = await self.engine.db.read(lambda s: list(s.execute(select(*_PLAN_COLUMNS))))
        now = self.clock().timestamp()
        for ep in rows:
            self._add(ep, now)
        return len(rows)

    async def refresh(self, endpoint_id: int) -> None:
        """Pick up an endpoint that was added, changed or removed."""
        ep = await self.engine.db.read(
            lambda s: s.execute(select(*_PLAN_COLUMNS).where(Endpoint.id == endpoint_id)).first()
        )
        if ep is None:
            self.planned.pop(endpoint_id, None)
            self._due.pop(endpoint_id, None)
            return
        self._add(ep, self.clock().timestamp(), soon=True)

    def _add(self, ep: Any, now: float, soon: bool = False) -> None:
        plan = _plan(ep)
        self.planned[ep.id] = plan
        interval = plan.interval_s
        if soon:
            due = now
        elif ep.last_checked_at is not None:
            # Keep each endpoint's phase across a restart, so the load stays spread.
            last = ep.last_checked_at.timestamp()
            due = last + interval * max(1, math.ceil((now - last) / interval))
        else:
            due = now + (ep.id * GOLDEN) % 1.0 * min(interval, 60.0)
        self._schedule(ep.id, due)

    def _schedule(self, endpoint_id: int, due: float) -> None:
        self._due[endpoint_id] = due
        heapq.heappush(self._heap, (due, endpoint_id))

    # -- running checks -----------------------------------------------------

    async def tick(self, *, wait: bool = False) -> None:
        """Start due checks, write the results that came in, run housekeeping.

        ``wait`` waits for the checks started now and writes their results
        too (tests; a real tick never waits for a slow check).
        """
        async with self._tick_lock:
            now = self.clock()
            started = self._start_due(now.timestamp())
            if wait and started:
                await asyncio.gather(*started)
            await self.flush()
            await self._periodic(now)

    def _start_due(self, now: float) -> list[asyncio.Task[None]]:
        started = []
        while self._heap and self._heap[0][0] <= now:
            due, endpoint_id = heapq.heappop(self._heap)
            if self._due.get(endpoint_id) != due or endpoint_id in self._running:
                continue  # stale entry, removed endpoint, or still being checked
            del self._due[endpoint_id]
            plan = self.planned.get(endpoint_id)
            if plan is None:
                continue
            self._running.add(endpoint_id)
            self._started[endpoint_id] = due
            task = asyncio.create_task(self._run(plan))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(task)
        return started

    async def _run(self, plan: Planned) -> None:
        try:
            async with self._limit:
                result = await self._check(plan)
            self._results.append(_observation(plan.id, self.clock(), result))
        finally:
            self._running.discard(plan.id)

    async def _check(self, plan: Planned) -> Result:
        if plan.target is None:
            return push_result(plan.last_push_at, plan.interval_s, self.clock())
        return await integrations.get("monitoring").check(plan.target)  # type: ignore[attr-defined]

    async def flush(self) -> None:
        batch, self._results = self._results, []
        if not batch:
            return
        delays = await self._apply(batch)
        now = self.clock().timestamp()
        for o in batch:
            # From the time it was due, not when it finished: a check taking 30 ms
            # must not make a 60 s interval 61 s at the next whole tick.
            base = self._started.pop(o.endpoint_id, o.at.timestamp())
            # Not if it was removed meanwhile, or a check-now has rescheduled it already.
            if (
                o.endpoint_id in self.planned
                and o.endpoint_id in delays
                and (o.endpoint_id not in self._due)
            ):
                self._schedule(o.endpoint_id, max(base + delays[o.endpoint_id], now))

    async def _apply(self, batch: list[Observation]) -> dict[int, float]:
        for o in batch:
            self.counts["up" if o.ok else "down"] += 1
        return await self.engine.apply(batch)

    async def _periodic(self, now: datetime) -> None:
        if self._next_housekeeping is None or now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING
            await self.engine.housekeeping()
        if self._next_rollup is None or now >= self._next_rollup:
            self._next_rollup = now + ROLLUP
            policy = self.engine.policy
            await self.engine.db.write(
                lambda s: history.rollup(s, now, policy.raw_retention, policy.rollup_retention)
            )

    async def check_now(self, endpoint_id: int) -> tuple[Result, Endpoint]:
        """Check one endpoint at once (``check NAME``, the Re-check button); counts as a result."""
        plan = self.planned.get(endpoint_id)
        if plan is None:
            await self.refresh(endpoint_id)
            plan = self.planned[endpoint_id]
        result = await self._check(plan)
        at = self.clock()
        delays = await self._apply([_observation(endpoint_id, at, result)])
        if endpoint_id in delays:
            self._schedule(endpoint_id, at.timestamp() + delays[endpoint_id])
        ep = await self.engine.db.read(lambda s: s.get(Endpoint, endpoint_id))
        assert ep is not None
        return result, ep

    async def push(self, token: str) -> str | None:
        """A heartbeat arrived (``/push/{token}``); returns the endpoint's name, None if unknown."""
        now = self.clock()

        def record(session: Session) -> tuple[int, str] | None:
            ep = session.scalars(select(Endpoint).where(Endpoint.push_token == token)).first()
            if ep is None:
                return None
            ep.last_push_at = now
            return ep.id, ep.name

        found = await self.engine.db.write(record)
        if found is None:
            return None
        endpoint_id, name = found
        plan = self.planned.get(endpoint_id)
        if plan is not None:
            plan.last_push_at = now
        # A heartbeat is a successful check: a push endpoint recovers on it without waiting.
        delays = await self._apply([Observation(endpoint_id, now, True)])
        if endpoint_id in delays and plan is not None:
            self._schedule(endpoint_id, now.timestamp() + max(delays[endpoint_id], plan.interval_s))
        return name

    # -- APScheduler --------------------------------------------------------

    def start(self, aps: BaseScheduler) -> None:
        aps.add_job(
            self.tick,
            "interval",
            seconds=1,
            id="calcifer-checks",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=5,
        )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()


def _observation(endpoint_id: int, at: datetime, result: Result) -> Observation:
    # A warning (a certificate close to expiry) travels in the error column of an up result.
    return Observation(
        endpoint_id, at, result.ok, result.latency_ms, result.error or result.warning
    )
