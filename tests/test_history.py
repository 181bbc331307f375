"""History: five-minute rollups, uptime, latency series and graphs, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from calcifer_bot import history
from calcifer_bot.db import Database
from calcifer_bot.errors import IntegrationError, NotFound
from calcifer_bot.history import BUCKET, Series, bucket_start, rollup, series, uptime
from calcifer_bot.models import Base, CheckResult, CheckRollup, Endpoint, Incident
from tests.conftest import FakeClock

RAW = timedelta(hours=48)
KEEP = timedelta(days=400)
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # the clock fixture's start


# -- helpers --------------------------------------------------------------------


def add_endpoint(session: Session, name: str = "nas", created_at: datetime | None = None) -> int:
    at = created_at or NOW - timedelta(days=500)
    ep = Endpoint(name=name, kind="tcp", target="10.0.0.5", port=22, created_at=at, updated_at=at)
    session.add(ep)
    session.flush()
    return ep.id


async def endpoints(db: Database, n: int, **fields: Any) -> list[int]:
    return await db.write(lambda s: [add_endpoint(s, f"ep{i}", **fields) for i in range(n)])


def raw(
    endpoint_id: int, at: datetime, ok: bool = True, latency: float | None = 10.0
) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id,
        "checked_at": at,
        "ok": ok,
        "latency_ms": latency if ok else None,
        "error": None if ok else "refused",
    }


async def insert_raw(db: Database, rows: list[dict[str, Any]]) -> None:
    if rows:
        await db.write(lambda s: s.execute(insert(CheckResult), rows))


async def count(db: Database, model: type[Base]) -> int:
    return int(await db.read(lambda s: s.scalar(select(func.count()).select_from(model))))


async def rollups(db: Database) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    rows = await db.read(
        lambda s: s.execute(
            select(
                CheckRollup.endpoint_id,
                CheckRollup.bucket,
                CheckRollup.checks,
                CheckRollup.failures,
                CheckRollup.latency_p50_ms,
                CheckRollup.latency_p95_ms,
                CheckRollup.latency_max_ms,
            )
        ).all()
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


async def roll(db: Database, now: datetime = NOW, keep: timedelta = KEEP) -> history.RollupStats:
    return await db.write(lambda s: rollup(s, now, RAW, keep))


# -- buckets ----------------------------------------------------------------------


def test_bucket_start_floors_to_five_minutes_in_utc() -> None:
    assert bucket_start(datetime(2026, 1, 1, 10, 7, 59, 999, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 5, tzinfo=UTC
    )
    assert bucket_start(datetime(2026, 1, 1, 10, 5, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 5, tzinfo=UTC
    )
    plus2 = timezone(timedelta(hours=2))
    assert bucket_start(datetime(2026, 1, 1, 12, 14, tzinfo=plus2)) == datetime(
        2026, 1, 1, 10, 10, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        bucket_start(datetime(2026, 1, 1, 10, 7))


# -- rollup ---------------------------------------------------------------------


async def test_rollup_folds_old_results_into_exact_buckets(database: Database) -> None:
    (ep,) = await endpoints(database, 1)
    old = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # three days ago
    rows = [raw(ep, old + timedelta(seconds=20 * i), latency=10.0 * (i + 1)) for i in range(8)]
    rows += [raw(ep, old + timedelta(minutes=3), ok=False), raw(ep, old + timedelta(minutes=4))]
    rows[-1]["latency_ms"] = None  # a success without a latency (a push) counts, adds none
    # The next bucket: all failed, so no latency at all.
    rows += [raw(ep, old + timedelta(minutes=5, seconds=s), ok=False) for s in (0, 30)]
    recent = [raw(ep, NOW - timedelta(hours=h)) for h in (1, 47)]
    await insert_raw(database, rows + recent)

    stats = await roll(database)

    assert stats == history.RollupStats(raw_rolled=12, raw_deleted=12, rollups_deleted=0)
    assert await rollups(database) == {
        # 10 checks, 1 failed, 8 latencies 10…80: p50 45, p95 between 70 and 80, max 80.
        (ep, old): (10, 1, 45.0, 76.5, 80.0),
        (ep, old + BUCKET): (2, 2, None, None, None),
    }
    assert await count(database, CheckResult) == 2  # the last 48 h stay raw


async def test_rollup_twice_changes_nothing_the_second_time(database: Database) -> None:
    (ep,) = await endpoints(database, 1)
    start = NOW - timedelta(days=3)
    await insert_raw(database, [raw(ep, start + timedelta(minutes=i)) for i in range(120)])
    first = await roll(database)
    after_first = await rollups(database)

    second = await roll(database)

    assert first.raw_rolled == 120
    assert second == history.RollupStats()
    assert await rollups(database) == after_first
    assert len(after_first) == 24
    assert await count(database, CheckResult) == 0


async def test_a_late_row_merges_into_its_existing_bucket(database: Database) -> None:
    (ep,) = await endpoints(database, 1)
    bucket = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    await insert_raw(
        database, [raw(ep, bucket + timedelta(minutes=i), latency=10.0) for i in range(4)]
    )
    await roll(database)
    # Arrives after its bucket was rolled up (a replica catching up, an import).
    await insert_raw(
        database,
        [raw(ep, bucket + timedelta(minutes=4), latency=50.0), raw(ep, bucket, ok=False)],
    )

    stats = await roll(database)

    assert stats.raw_rolled == 2
    checks, failures, p50, p95, top = (await rollups(database))[(ep, bucket)]
    assert (checks, failures, top) == (6, 1, 50.0)  # counts and max are exact
    # Percentiles are weighted means of the two rows': (4 × 10 + 1 × 50) / 5.
    assert p50 == pytest.approx(18.0)
    assert p95 == pytest.approx(18.0)


async def test_old_rollups_and_ancient_raw_rows_are_pruned(database: Database) -> None:
    (ep,) = await endpoints(database, 1)
    expired, kept = bucket_start(NOW - timedelta(days=401)), bucket_start(NOW - timedelta(days=399))
    await database.write(
        lambda s: s.execute(
            insert(CheckRollup),
            [
                {
                    "endpoint_id": ep,
                    "bucket": b,
                    "checks": 5,
                    "failures": 0,
                    "latency_p50_ms": 1.0,
                    "latency_p95_ms": 2.0,
                    "latency_max_ms": 3.0,
                }
                for b in (expired, kept)
            ],
        )
    )
    # Raw rows older than the rollup retention are dropped, not rolled up first.
    await insert_raw(database, [raw(ep, NOW - timedelta(days=450))])

    stats = await roll(database)

    assert stats == history.RollupStats(raw_rolled=0, raw_deleted=1, rollups_deleted=1)
    assert list(await rollups(database)) == [(ep, kept)]


async def test_chunked_rollup_equals_the_exact_buckets(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny chunks and endpoint batches: a bucket cut by the limit is still rolled up whole."""
    monkeypatch.setattr(history, "CHUNK_ROWS", 7)
    monkeypatch.setattr(history, "ENDPOINT_BATCH", 2)
    # Some endpoints fit several to a chunk, others need several pages of their own.
    sizes = [60, 3, 2, 5, 1, 40, 6]
    ids = await endpoints(database, len(sizes))
    rng = random.Random(7)
    start = NOW - timedelta(days=3)
    rows = []
    for ep, size in zip(ids, sizes, strict=True):
        for _ in range(size):
            at = start + timedelta(seconds=rng.randrange(3 * 3600))
            rows.append(raw(ep, at, ok=rng.random() > 0.2, latency=round(rng.uniform(1, 100), 3)))
    await insert_raw(database, rows)
    expected: dict[tuple[int, datetime], list[dict[str, Any]]] = {}
    for r in rows:
        expected.setdefault((r["endpoint_id"], bucket_start(r["checked_at"])), []).append(r)

    stats = await roll(database)

    assert stats.raw_rolled == stats.raw_deleted == sum(sizes)
    got = await rollups(database)
    assert set(got) == set(expected)
    for key, members in expected.items():
        lat = sorted(r["latency_ms"] for r in members if r["ok"])
        checks, failures, p50, p95, top = got[key]
        assert (checks, failures) == (len(members), sum(not r["ok"] for r in members))
        assert p50 == pytest.approx(history.percentile(lat, 0.5))
        assert p95 == pytest.approx(history.percentile(lat, 0.95))
        assert top == (lat[-1] if lat else None)


async def test_a_bucket_bigger_than_a_chunk_keeps_exact_counts(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "CHUNK_ROWS", 7)
    (ep,) = await endpoints(database, 1)
    bucket = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    rows = [
        raw(ep, bucket + timedelta(seconds=10 * i), ok=i % 4 != 0, latency=i) for i in range(20)
    ]
    await insert_raw(database, rows)

    stats = await roll(database)

    assert stats.raw_rolled == 20
    checks, failures, p50, _, top = (await rollups(database))[(ep, bucket)]
    # Rolled up in three parts and merged: counts and max exact, p50 close.
    assert (checks, failures, top) == (20, 5, 19.0)
    assert p50 == pytest.approx(10.0, abs=3)


async def test_concurrent_rollups_do_not_collide(database: Database) -> None:
    """Two replicas (or a slow run and the next) at once: serialized, nothing twice."""
    ids = await endpoints(database, 3)
    start = NOW - timedelta(days=3)
    await insert_raw(
        database, [raw(ep, start + timedelta(minutes=m)) for ep in ids for m in range(300)]
    )

    first, second = await asyncio.gather(roll(database), roll(database))

    assert first.raw_rolled + second.raw_rolled == 900
    assert sum(v[0] for v in (await rollups(database)).values()) == 900


def rows_of(session: Session, model: type[Base]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


async def test_storage_stays_bounded_over_days_of_checks(database: Database) -> None:
    """4 endpoints checked every 60 s for 4 days, rolled up every simulated hour.

    Bounds, per endpoint at a 60 s interval, right after a rollup:
    raw ≤ (raw_retention + one bucket) / 60 s + 1 = 2,886 rows, and
    rollups ≤ (rollup_retention − raw_retention) / 5 min + 1 = 289 rows for the
    3-day rollup retention used here (115,201 for the default 400 days): the
    tables never hold more than 3,175 rows per endpoint, where 4 days of raw
    results would be 5,760 (and 400 days 576,000). Only 4 endpoints: inserting
    the 23,040 rows is most of this test's time, and the bounds are per endpoint.
    """
    n, days, keep = 4, 4, timedelta(days=3)
    ids = await endpoints(database, n)
    raw_bound = n * ((RAW + BUCKET) // timedelta(seconds=60) + 1)
    rollup_bound = n * ((keep - RAW) // BUCKET + 1)
    start = NOW - timedelta(days=days)

    def hour_of_checks(session: Session, t0: datetime) -> tuple[int, int]:
        # One transaction per simulated hour: what the engine does in many.
        rows = [
            raw(ep, t0 + timedelta(minutes=m), ok=(m + ep) % 97 != 0, latency=5.0 + m % 7)
            for ep in ids
            for m in range(60)
        ]
        session.execute(insert(CheckResult), rows)
        rollup(session, t0 + timedelta(hours=1), RAW, keep)
        return rows_of(session, CheckResult), rows_of(session, CheckRollup)

    peak_raw = peak_total = 0
    for hour in range(days * 24):
        t0 = start + timedelta(hours=hour)
        raw_rows, rollup_rows = await database.write(lambda s, t0=t0: hour_of_checks(s, t0))
        assert raw_rows <= raw_bound
        assert rollup_rows <= rollup_bound
        peak_raw, peak_total = max(peak_raw, raw_rows), max(peak_total, raw_rows + rollup_rows)

    assert peak_raw == n * 2880  # exactly the last 48 h, on the hour
    assert rollup_rows == n * 288  # the day before the raw 48 h: full, pruned as it ages
    assert peak_total <= raw_bound + rollup_bound < n * days * 1440
    # Nothing was lost on the way: every check of the kept 3 days is still counted.
    rolled = await database.read(lambda s: s.scalar(select(func.sum(CheckRollup.checks))))
    assert rolled + raw_rows == n * 3 * 1440


# -- uptime -------------------------------------------------------------------


def add_incident(
    session: Session, endpoint_id: int, started: datetime, resolved: datetime | None
) -> None:
    session.add(
        Incident(endpoint_id=endpoint_id, started_at=started, resolved_at=resolved, error="down")
    )


async def every_minute(
    db: Database, ep: int, since: datetime, until: datetime, down: tuple[datetime, datetime] | None
) -> None:
    rows, t = [], since
    while t < until:
        failed = down is not None and down[0] <= t < down[1]
        rows.append(raw(ep, t, ok=not failed, latency=20.0))
        t += timedelta(minutes=1)
    await insert_raw(db, rows)


async def test_half_an_hour_down_in_a_day_is_97_92_percent(
    database: Database, clock: FakeClock
) -> None:
    ep = await database.write(add_endpoint)
    outage = (NOW - timedelta(hours=5), NOW - timedelta(hours=4, minutes=30))
    await every_minute(database, ep, NOW - timedelta(days=1), NOW, outage)
    await database.write(lambda s: add_incident(s, ep, *outage))
    # An older incident outside the window counts for nothing.
    await database.write(
        lambda s: add_incident(s, ep, NOW - timedelta(days=3), NOW - timedelta(days=2))
    )

    u = await database.read(lambda s: uptime(s, ep, timedelta(days=1), clock()))

    assert round(u.uptime_pct or 0, 2) == 97.92
    assert u.downtime == timedelta(minutes=30)
    assert (u.checks, u.failures) == (1440, 30)
    assert (u.incidents, u.open_incident) == (1, False)
    assert (u.p50_ms, u.p95_ms) == (20.0, 20.0)
    assert u.window == timedelta(days=1)


async def test_an_open_incident_counts_until_now(database: Database, clock: FakeClock) -> None:
    ep = await database.write(add_endpoint)
    await every_minute(database, ep, NOW - timedelta(days=1), NOW, None)
    await database.write(lambda s: add_incident(s, ep, NOW - timedelta(hours=2), None))

    u = await database.read(lambda s: uptime(s, ep, timedelta(days=1), clock()))
    clock.advance(timedelta(hours=1))
    later = await database.read(lambda s: uptime(s, ep, timedelta(days=1), clock()))

    assert u.downtime == timedelta(hours=2)
    assert u.uptime_pct == pytest.approx(100 * (1 - 2 / 24))
    assert (u.incidents, u.open_incident) == (1, True)
    assert later.downtime == timedelta(hours=3)


async def test_a_new_endpoint_is_measured_from_its_creation(
    database: Database, clock: FakeClock
) -> None:
    ep = await database.write(lambda s: add_endpoint(s, created_at=NOW - timedelta(hours=1)))
    outage = (NOW - timedelta(minutes=30), NOW - timedelta(minutes=24))
    await every_minute(database, ep, NOW - timedelta(hours=1), NOW, outage)
    await database.write(lambda s: add_incident(s, ep, *outage))

    u = await database.read(lambda s: uptime(s, ep, timedelta(days=1), clock()))

    assert u.uptime_pct == pytest.approx(90.0)  # 6 minutes of one hour, not of 24
    assert (u.checks, u.failures) == (60, 6)


async def test_uptime_adds_rolled_up_history_to_raw_results(
    database: Database, clock: FakeClock
) -> None:
    ep = await database.write(add_endpoint)
    await every_minute(database, ep, NOW - timedelta(days=5), NOW - timedelta(days=4), None)
    await every_minute(database, ep, NOW - timedelta(hours=1), NOW, None)
    await insert_raw(database, [raw(ep, NOW - timedelta(minutes=30), latency=80.0)])
    await roll(database)

    u = await database.read(lambda s: uptime(s, ep, timedelta(days=7), clock()))
    empty = await database.read(
        lambda s: uptime(s, ep, timedelta(days=2), clock() - timedelta(days=2))
    )

    assert (u.checks, u.failures) == (1440 + 61, 0)
    assert u.p50_ms == pytest.approx(20.0)
    assert 20.0 <= (u.p95_ms or 0) < 80.0
    assert u.uptime_pct == 100.0
    # Nothing checked in that window: no data, not 100 %.
    assert (empty.checks, empty.uptime_pct, empty.p50_ms) == (0, None, None)


async def test_uptime_of_an_unknown_endpoint(database: Database) -> None:
    with pytest.raises(NotFound):
        await database.read(lambda s: uptime(s, 999, timedelta(days=1), NOW))


# -- series and graph -------------------------------------------------------------


async def test_series_has_raw_points_rollup_medians_and_clipped_down_periods(
    database: Database, clock: FakeClock
) -> None:
    ep = await database.write(add_endpoint)
    await every_minute(
        database, ep, NOW - timedelta(days=3), NOW - timedelta(days=3) + 2 * BUCKET, None
    )
    outage = (NOW - timedelta(minutes=10), NOW - timedelta(minutes=5))
    await every_minute(database, ep, NOW - timedelta(hours=1), NOW, outage)
    await database.write(lambda s: add_incident(s, ep, *outage))
    await database.write(
        lambda s: add_incident(s, ep, NOW - timedelta(days=8), NOW - timedelta(days=6))
    )
    await database.write(lambda s: add_incident(s, ep, NOW - timedelta(minutes=2), None))
    await roll(database)

    s = await database.read(lambda s: series(s, ep, timedelta(days=7), clock()))

    start = NOW - timedelta(days=7)
    assert s.points[:2] == [
        (NOW - timedelta(days=3), 20.0),
        (NOW - timedelta(days=3) + BUCKET, 20.0),
    ]
    assert len(s.points) == 2 + 60
    assert s.points[-10] == (NOW - timedelta(minutes=10), None)  # a failed check breaks the line
    assert [p[0] for p in s.points] == sorted(p[0] for p in s.points)
    assert s.down == [
        (start, NOW - timedelta(days=6)),  # clipped to the window
        outage,
        (NOW - timedelta(minutes=2), NOW),  # open: until now
    ]
    assert (s.start, s.end) == (start, NOW)


def month_of_points() -> Series:
    """30 days: 8,064 rollup medians then 2,880 raw points, a spike and two outages."""
    start = NOW - timedelta(days=30)
    rng = random.Random(3)
    points: list[tuple[datetime, float | None]] = [
        (start + i * BUCKET, 20 + rng.random() * 5) for i in range(28 * 288)
    ]
    points += [
        (NOW - RAW + timedelta(minutes=i), None if 600 <= i < 640 else 15 + rng.random() * 10)
        for i in range(2880)
    ]
    points[4000] = (points[4000][0], 900.0)  # one spike
    down = [
        (NOW - timedelta(days=12), NOW - timedelta(days=11, hours=20)),
        (NOW - RAW + timedelta(minutes=600), NOW - RAW + timedelta(minutes=640)),
    ]
    # Four hours down: every check failed, the buckets have no median.
    points = [(at, None) if down[0][0] <= at < down[0][1] else (at, v) for at, v in points]
    return Series(points=points, down=down, start=start, end=NOW)


def test_render_graph_makes_a_png_quickly() -> None:
    pytest.importorskip("matplotlib")
    month = month_of_points()
    history.render_graph("warm-up", Series([], []), timedelta(days=1))  # the import, once

    started = time.perf_counter()
    png = history.render_graph("nas", month, timedelta(days=30))
    took = time.perf_counter() - started
    empty = history.render_graph(
        "new", Series([], [], NOW - timedelta(days=1), NOW), timedelta(days=1)
    )

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000  # a line, shading, labels: not a blank canvas
    assert empty.startswith(b"\x89PNG") and len(empty) < len(png)
    assert took < 1.0  # ~0.1 s here; generous for slow CI machines


def test_downsampling_keeps_spikes_and_gaps() -> None:
    month = month_of_points()

    points = history.downsample(month.points)

    assert len(points) <= history.MAX_GRAPH_POINTS
    assert max(v for _, v in points if v is not None) == 900.0
    # The four hours down break the line; the 40 minutes (under one bin) only shade it.
    gaps = [at for at, v in points if v is None]
    assert gaps and all(NOW - timedelta(days=12) <= at < NOW - timedelta(days=11) for at in gaps)
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    assert history.downsample(month.points[:100]) == month.points[:100]


@pytest.mark.parametrize(
    ("window", "label"),
    [
        (timedelta(hours=24), "24h"),
        (timedelta(hours=48), "48h"),
        (timedelta(days=7), "7d"),
        (timedelta(days=30), "30d"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=45), "45s"),
    ],
)
def test_graph_windows_are_named_as_people_write_them(window: timedelta, label: str) -> None:
    assert history.window_label(window) == label


def test_graph_has_a_title_labelled_axes_and_the_whole_window() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.dates import num2date

    fig = history.figure("nas", month_of_points(), timedelta(days=30))

    (ax,) = fig.axes
    assert ax.get_title(loc="left") == "nas — latency, last 30d"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time (UTC)", "latency (ms)")
    assert [num2date(x) for x in ax.get_xlim()] == [NOW - timedelta(days=30), NOW]
    assert ax.get_ylim()[0] == 0
    assert len(ax.patches) == 2  # the two down periods, shaded
    assert len(ax.lines[0].get_xdata()) <= history.MAX_GRAPH_POINTS


def test_graph_without_matplotlib_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    with pytest.raises(IntegrationError) as caught:
        history.render_graph("nas", Series([(NOW, 1.0)], []), timedelta(days=1))

    assert caught.value.message == "charts need matplotlib: pip install 'calcifer[charts]'"
    assert caught.value.permanent is True
