"""How fast are the history and status queries on a big database?

Builds a database the size of a large installation — 10,000 endpoints and 30
days of history each, in the shape ``history.rollup()`` leaves it: five-minute
rollups older than 48 h, raw results at 60 s for the last 48 h — then times,
through ``Database.read`` as the chat commands call them (worker thread and
transaction included), the queries behind ``uptime``, ``graph``, ``status``
and ``endpoint list --down``: the median and p95 of 20 runs after one warm-up,
against a 100 ms target. The naive way to compute the same uptime (load every
row of the window and add up in Python) is measured in the same process as a
baseline.

Raw results are built for only 100 endpoints (the queried one among them):
48 h for all 10,000 would be 28.8 M rows, slow to build and no different for a
query that reads one endpoint's rows through its index. Rollups are built for
all of them, and in the order rollup() writes them — every endpoint's bucket,
then the next bucket — so one endpoint's rows are spread over the table as in
real life, not packed together.

    python benchmarks/bench_queries.py [--endpoints 10000] [--days 30]
        [--raw-endpoints 100] [--runs 20] [--postgres URL] [--keep DIR]
        [--what-if-covering]

SQLite is always measured (a file in a temporary directory, or in ``--keep
DIR`` to reuse it next time); ``--postgres URL`` measures PostgreSQL too, in a
schema of its own that is dropped afterwards. At full size each database is
about 9 GB (80.6 M rollup rows) and takes about ten minutes to build; pass
``--endpoints 1000`` for a quick look. ``--what-if-covering`` also times
uptime/series with covering indexes the schema does not have (created on the
built data, dropped afterwards). Timings are warm-cache: a machine whose page
cache cannot hold the database will see more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table, create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from calcifer_bot import history
from calcifer_bot.aio import blocking
from calcifer_bot.db import Database, normalize_url
from calcifer_bot.errors import IntegrationError
from calcifer_bot.models import CheckResult, CheckRollup, Endpoint, Incident

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/
from tests.conftest import postgres_schema

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RAW = timedelta(hours=48)
TARGET_MS = 100.0
GRAPH_TARGET_MS = 500.0
STEP = int(history.BUCKET.total_seconds())


# -- progress -------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self.started = time.perf_counter()
        self.live = sys.stderr.isatty()
        self._draw()

    def advance(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        self._draw()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _draw(self) -> None:
        if not self.live:
            return
        share = self.done / self.total
        bar = "#" * int(share * 30)
        elapsed = time.perf_counter() - self.started
        eta = f", {elapsed / share - elapsed:.0f}s left" if 0 < share < 1 else ""
        sys.stderr.write(f"\r{self.label:<28} [{bar:<30}] {share:6.1%}{eta}\033[K")
        sys.stderr.flush()


# -- building the database ---------------------------------------------------------


@dataclass
class Built:
    url: str
    kind: str
    endpoints: int
    raw_endpoints: int
    days: int
    queried: int  # the endpoint whose uptime is timed
    raw_rows: int
    rollup_rows: int
    incidents: int
    seconds: float
    size: str


def naive(at: datetime) -> datetime:
    """How the schema stores times, for the raw SQL that fills it: naive UTC."""
    return at.astimezone(UTC).replace(tzinfo=None)


def build(url: str, n_endpoints: int, days: int, n_raw: int) -> Built:
    started = time.perf_counter()
    migrated = Database(url)
    migrated.upgrade()  # the real schema, through the real migrations
    migrated.dispose()
    engine = create_engine(normalize_url(url))
    kind = engine.dialect.name
    rng = random.Random(42)
    queried = min(50, n_raw, n_endpoints)
    created = NOW - timedelta(days=days + 1)
    with engine.connect() as conn:
        if kind == "sqlite":
            # A throw-away file: no journal, no fsync, a big page cache while filling.
            conn.exec_driver_sql("PRAGMA journal_mode=OFF")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.exec_driver_sql("PRAGMA cache_size=-1000000")
            conn.commit()
        with conn.begin():
            incidents = _endpoints(conn, n_endpoints, created, rng, queried)
        raw_rows = _raw(conn, kind, min(n_raw, n_endpoints), days)
        rollup_rows = _rollups(conn, kind, n_endpoints, days)
        size = _size(conn, kind, url)
    if kind == "postgresql":
        # What autovacuum does on a server that has been running: statistics for
        # the planner, a visibility map for index-only scans. (Calcifer never runs
        # ANALYZE on SQLite, so neither does this.)
        print("  VACUUM ANALYZE…", file=sys.stderr)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return Built(
        url=url,
        kind=kind,
        endpoints=n_endpoints,
        raw_endpoints=min(n_raw, n_endpoints),
        days=days,
        queried=queried,
        raw_rows=raw_rows,
        rollup_rows=rollup_rows,
        incidents=incidents,
        seconds=time.perf_counter() - started,
        size=size,
    )


def _endpoints(
    conn: Connection, n: int, created: datetime, rng: random.Random, queried: int
) -> int:
    """n endpoints, 1 in 500 down with an open incident, 1 in 300 muted; ~2 old incidents each."""
    rows: list[dict[str, Any]] = []
    incidents: list[tuple[int, datetime, datetime | None]] = []
    for i in range(1, n + 1):
        down = i % 500 == 7 or i == queried
        rows.append(
            {
                "id": i,
                "name": f"ep{i:05d}",
                "kind": "tcp",
                "target": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                "port": 22,
                "state": "down" if down else "up",
                "state_since": NOW - timedelta(minutes=20 if down else 3000),
                "last_error": "connection refused" if down else None,
                "muted_until": NOW + timedelta(hours=1) if i % 300 == 0 else None,
                "created_at": created,
                "updated_at": created,
            }
        )
        if down:
            incidents.append((i, NOW - timedelta(minutes=20), None))
        for _ in range(2):
            start = NOW - timedelta(seconds=rng.randrange(int((NOW - created).total_seconds())))
            incidents.append((i, start, min(start + timedelta(minutes=rng.randrange(2, 90)), NOW)))
    # Core inserts (the table's columns still convert the times): 10,000 rows in a blink.
    bar = Progress("endpoints and incidents", len(rows))
    for part in range(0, len(rows), 1000):
        conn.execute(insert(cast(Table, Endpoint.__table__)), rows[part : part + 1000])
        bar.advance(1000)
    conn.execute(
        insert(cast(Table, Incident.__table__)),
        [
            {
                "endpoint_id": e,
                "started_at": s,
                "resolved_at": r,
                "error": "refused",
            }
            for e, s, r in incidents
        ],
    )
    bar.close()
    return len(incidents)


def _raw(conn: Connection, kind: str, n: int, days: int) -> int:
    """48 h of results at 60 s for endpoints 1..n, inserted minute by minute as checks run."""
    minutes = int(min(RAW, timedelta(days=days)).total_seconds() // 60)
    start = naive(NOW - timedelta(minutes=minutes))
    at = str(start) if kind == "sqlite" else start  # sqlite3's datetime adapter is deprecated
    if kind == "sqlite":
        sql = text(
            "WITH RECURSIVE m(i) AS (SELECT :i0 UNION ALL SELECT i + 1 FROM m WHERE i < :i1 - 1) "
            "INSERT INTO check_results (endpoint_id, checked_at, ok, latency_ms, error) "
            "SELECT e.id, strftime('%Y-%m-%d %H:%M:%S.000000', :start, '+' || (m.i * 60) || "
            "' seconds'), abs(random()) % 200 != 0, 5 + abs(random()) % 4000 / 100.0, NULL "
            "FROM m CROSS JOIN endpoints AS e WHERE e.id <= :n"
        )
    else:
        sql = text(
            "INSERT INTO check_results (endpoint_id, checked_at, ok, latency_ms, error) "
            "SELECT e.id, CAST(:start AS timestamp) + m.i * interval '1 minute', "
            "random() >= 0.005, 5 + random() * 40, NULL "
            "FROM generate_series(:i0, :i1 - 1) AS m(i) CROSS JOIN endpoints AS e "
            "WHERE e.id <= :n ORDER BY m.i, e.id"
        )
    bar = Progress("raw results (48 h)", minutes)
    for i0 in range(0, minutes, 60):
        with conn.begin():
            conn.execute(sql, {"i0": i0, "i1": min(i0 + 60, minutes), "start": at, "n": n})
        bar.advance(60)
    bar.close()
    return n * minutes


def _rollups(conn: Connection, kind: str, n: int, days: int) -> int:
    """Five-minute rollups from ``days`` ago up to 48 h ago, bucket by bucket."""
    start = history.bucket_start(NOW - timedelta(days=days))
    end = history.bucket_start(NOW - RAW)
    buckets = int((end - start).total_seconds()) // STEP
    if buckets <= 0:
        return 0
    at = str(naive(start)) if kind == "sqlite" else naive(start)
    if kind == "sqlite":
        sql = text(
            "WITH RECURSIVE b(i) AS (SELECT :i0 UNION ALL SELECT i + 1 FROM b WHERE i < :i1 - 1) "
            "INSERT INTO check_rollups (endpoint_id, bucket, checks, failures, latency_p50_ms, "
            "latency_p95_ms, latency_max_ms) "
            "SELECT e.id, strftime('%Y-%m-%d %H:%M:%S.000000', :start, '+' || (b.i * 300) || "
            "' seconds'), 5, abs(random()) % 100 = 0, 15 + abs(random()) % 1000 / 100.0, "
            "30 + abs(random()) % 1000 / 100.0, 45 + abs(random()) % 2000 / 100.0 "
            "FROM b CROSS JOIN endpoints AS e"  # CROSS JOIN: b is the outer loop, in order
        )
    else:
        sql = text(
            "INSERT INTO check_rollups (endpoint_id, bucket, checks, failures, latency_p50_ms, "
            "latency_p95_ms, latency_max_ms) "
            "SELECT e.id, CAST(:start AS timestamp) + b.i * interval '5 minutes', 5, "
            "CAST(random() < 0.01 AS integer), 15 + random() * 10, 30 + random() * 10, "
            "45 + random() * 20 "
            "FROM generate_series(:i0, :i1 - 1) AS b(i) CROSS JOIN endpoints AS e "
            "ORDER BY b.i, e.id"
        )
        # Bulk loading into a 2 GB primary-key index at random places is what takes
        # hours; building it once afterwards takes a minute. Same index either way.
        with conn.begin():
            conn.exec_driver_sql("ALTER TABLE check_rollups DROP CONSTRAINT pk_check_rollups")
    bar = Progress("rollups (5 min buckets)", buckets)
    per_day = 86400 // STEP
    for i0 in range(0, buckets, per_day):
        with conn.begin():
            conn.execute(sql, {"i0": i0, "i1": min(i0 + per_day, buckets), "start": at})
        bar.advance(per_day)
    bar.close()
    if kind == "postgresql":
        print("  building the rollups' primary key…", file=sys.stderr)
        with conn.begin():
            conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
            conn.exec_driver_sql(
                "ALTER TABLE check_rollups ADD CONSTRAINT pk_check_rollups "
                "PRIMARY KEY (endpoint_id, bucket)"
            )
    return n * buckets


def _size(conn: Connection, kind: str, url: str) -> str:
    if kind == "sqlite":
        path = Path(normalize_url(url).database or "")
        return f"{path.stat().st_size / 1e9:.1f} GB file"
    with conn.begin():
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return f"{int(size or 0) / 1e9:.1f} GB database"


# -- the queries -----------------------------------------------------------------


def status_counts(session: Session) -> tuple[dict[str, int], int, int]:
    """What ``status`` shows: endpoints by state, muted ones, open incidents."""
    states = {
        state: n
        for state, n in session.execute(
            select(Endpoint.state, func.count()).group_by(Endpoint.state)
        )
    }
    muted = session.scalar(select(func.count()).where(Endpoint.muted_until > NOW)) or 0
    open_incidents = session.scalar(select(func.count()).where(Incident.resolved_at.is_(None))) or 0
    return {str(k): int(v) for k, v in states.items()}, int(muted or 0), int(open_incidents or 0)


def down_list(session: Session) -> list[tuple[Any, ...]]:
    """What ``endpoint list --down`` shows."""
    rows = session.execute(
        select(Endpoint.name, Endpoint.kind, Endpoint.target, Endpoint.state_since,
               Endpoint.last_error)
        .where(Endpoint.state == "down")
        .order_by(Endpoint.name)
    )  # fmt: skip
    return [tuple(r) for r in rows]


def naive_uptime(
    session: Session, endpoint_id: int, window: timedelta
) -> tuple[int, int, float, float | None]:
    """The baseline: every row of the window as an ORM object, added up in Python."""
    start = NOW - window
    results = session.scalars(
        select(CheckResult).where(
            CheckResult.endpoint_id == endpoint_id, CheckResult.checked_at >= start
        )
    ).all()
    rolled = session.scalars(
        select(CheckRollup).where(
            CheckRollup.endpoint_id == endpoint_id, CheckRollup.bucket >= start
        )
    ).all()
    incidents = session.scalars(select(Incident).where(Incident.endpoint_id == endpoint_id)).all()
    checks = len(results) + sum(r.checks for r in rolled)
    failures = sum(not r.ok for r in results) + sum(r.failures for r in rolled)
    latencies = sorted(r.latency_ms for r in results if r.ok and r.latency_ms is not None)
    latencies += [r.latency_p50_ms for r in rolled if r.latency_p50_ms is not None]
    down = sum(
        (min(i.resolved_at or NOW, NOW) - max(i.started_at, start)).total_seconds()
        for i in incidents
        if (i.resolved_at or NOW) > start
    )
    pct = 100 * (1 - down / window.total_seconds())
    return checks, failures, pct, history.percentile(sorted(latencies), 0.5)


@dataclass
class Timing:
    name: str
    median_ms: float
    p95_ms: float
    target_ms: float

    @property
    def verdict(self) -> str:
        return "ok" if self.p95_ms <= self.target_ms else "MISSED"


async def timed(name: str, fn: Callable[[], Awaitable[Any]], runs: int, target: float) -> Timing:
    await fn()  # warm-up: the first run pays for statement compilation and cold pages
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return Timing(name, statistics.median(samples), p95, target)


async def measure(built: Built, runs: int, what_if: bool) -> list[Timing]:
    db = Database(built.url)
    ep, month = built.queried, timedelta(days=built.days)
    try:
        rows = [
            await timed(
                f"uptime(1 endpoint, {built.days}d)",
                lambda: db.read(lambda s: history.uptime(s, ep, month, NOW)),
                runs,
                TARGET_MS,
            ),
            await timed(
                "status counts (3 queries)", lambda: db.read(status_counts), runs, TARGET_MS
            ),
            await timed(
                "endpoints WHERE state='down'", lambda: db.read(down_list), runs, TARGET_MS
            ),
            await timed(
                f"series(1 endpoint, {built.days}d)",
                lambda: db.read(lambda s: history.series(s, ep, month, NOW)),
                runs,
                TARGET_MS,
            ),
        ]
        series = await db.read(lambda s: history.series(s, ep, month, NOW))
        try:
            rows.append(
                await timed(
                    f"render_graph({len(series.points)} points)",
                    lambda: blocking(history.render_graph, "bench", series, month),
                    max(runs // 4, 3),
                    GRAPH_TARGET_MS,
                )
            )
        except IntegrationError as exc:
            print(f"  (graph not timed: {exc.message})")
        rows.append(
            await timed(
                f"baseline: naive uptime, {built.days}d",
                lambda: db.read(lambda s: naive_uptime(s, ep, month)),
                max(runs // 4, 3),
                float("inf"),
            )
        )
        u = await db.read(lambda s: history.uptime(s, ep, month, NOW))
        states, muted, open_incidents = await db.read(status_counts)
        down = await db.read(down_list)
        print(
            f"  uptime({ep}): {u.checks} checks, {u.failures} failed, "
            f"{u.uptime_pct:.3f} %, p50 {u.p50_ms:.1f} ms, p95 {u.p95_ms:.1f} ms, "
            f"{u.incidents} incidents, open: {u.open_incident}"
        )
        print(f"  status: {states}, {muted} muted, {open_incidents} open incidents; "
              f"{len(down)} listed down")  # fmt: skip
        rows.append(await _rollup_step(db, built))
        if what_if:
            rows += await _with_covering_indexes(db, built, runs)
    finally:
        db.dispose()
    return rows


# Not in the schema: what covering indexes would buy, measured on the same data.
COVERING = {
    "sqlite": [
        "CREATE INDEX bench_rollups_covering ON check_rollups "
        "(endpoint_id, bucket, checks, failures, latency_p50_ms, latency_p95_ms)",
        "CREATE INDEX bench_results_covering ON check_results "
        "(endpoint_id, checked_at, ok, latency_ms)",
    ],
    "postgresql": [
        "CREATE INDEX bench_rollups_covering ON check_rollups (endpoint_id, bucket) "
        "INCLUDE (checks, failures, latency_p50_ms, latency_p95_ms)",
        "CREATE INDEX bench_results_covering ON check_results (endpoint_id, checked_at) "
        "INCLUDE (ok, latency_ms)",
        "VACUUM ANALYZE check_rollups",
        "VACUUM ANALYZE check_results",
    ],
}


async def _with_covering_indexes(db: Database, built: Built, runs: int) -> list[Timing]:
    """What-if: uptime() and series() again, with covering indexes; dropped afterwards."""
    ep, month = built.queried, timedelta(days=built.days)
    engine = create_engine(normalize_url(built.url))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for ddl in COVERING[built.kind]:
            print(f"  what-if: {ddl[:60]}…", file=sys.stderr)
            conn.exec_driver_sql(ddl)
    try:
        db.dispose()  # new connections see the new indexes
        return [
            await timed(
                f"uptime({built.days}d), covering idx",
                lambda: db.read(lambda s: history.uptime(s, ep, month, NOW)),
                runs,
                TARGET_MS,
            ),
            await timed(
                f"series({built.days}d), covering idx",
                lambda: db.read(lambda s: history.series(s, ep, month, NOW)),
                runs,
                TARGET_MS,
            ),
        ]
    finally:
        db.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("DROP INDEX bench_rollups_covering")
            conn.exec_driver_sql("DROP INDEX bench_results_covering")
        engine.dispose()


async def _rollup_step(db: Database, built: Built) -> Timing:
    """One rollup() as the scheduler runs it, 5 minutes later: the raw endpoints' oldest bucket.

    Rolled back afterwards, so the database stays as built (and ``--keep`` can reuse it).
    """
    later = NOW + history.BUCKET

    def step() -> tuple[history.RollupStats, float]:
        with Session(db.engine) as session:
            started = time.perf_counter()
            stats = history.rollup(session, later, RAW, timedelta(days=400))
            took = (time.perf_counter() - started) * 1000
            session.rollback()
        return stats, took

    stats, took = await blocking(step)
    print(f"  rollup() 5 min later: {stats.raw_rolled} raw rows folded, all "
          f"{built.endpoints} endpoints walked")  # fmt: skip
    return Timing("rollup() of one 5-min step (1 run)", took, took, float("inf"))


def report(built: Built, rows: list[Timing]) -> None:
    print(
        f"\n{built.kind}: {built.endpoints} endpoints, {built.days} days; "
        f"rollups for all ({built.rollup_rows:,} rows), raw results at 60 s for "
        f"{built.raw_endpoints} of them ({built.raw_rows:,} rows; 48 h for all would be "
        f"{built.endpoints * 2880:,}), {built.incidents:,} incidents; {built.size}, "
        f"built in {built.seconds:.0f} s"
    )
    print(f"  {'query':<38}{'median':>12}{'p95':>12}{'target':>10}  result")
    for t in rows:
        target = "—" if t.target_ms == float("inf") else f"{t.target_ms:.0f} ms"
        verdict = "—" if t.target_ms == float("inf") else t.verdict
        print(f"  {t.name:<38}{t.median_ms:>9.2f} ms{t.p95_ms:>9.2f} ms{target:>10}  {verdict}")
    base = next(t for t in rows if t.name.startswith("baseline"))
    print(f"  uptime() is {base.median_ms / rows[0].median_ms:.0f}× faster than the naive "
          f"baseline (median {base.median_ms:.0f} ms), measured in this process")  # fmt: skip


# -- main -----------------------------------------------------------------------


def run(url: str, args: argparse.Namespace, saved: Path | None = None) -> None:
    if saved is not None and saved.exists():
        built = Built(**json.loads(saved.read_text()))
        print(f"reusing {built.url} (delete {saved} to rebuild)", file=sys.stderr)
    else:
        print(f"building the {url.split(':', 1)[0].split('+')[0]} database…", file=sys.stderr)
        built = build(url, args.endpoints, args.days, args.raw_endpoints)
        if saved is not None:
            saved.write_text(json.dumps(asdict(built)))
    report(built, asyncio.run(measure(built, args.runs, args.what_if_covering)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--raw-endpoints", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL")
    parser.add_argument(
        "--what-if-covering",
        action="store_true",
        help="also time uptime/series with covering indexes (not in the schema; dropped after)",
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="keep the SQLite file in DIR, and reuse it next time"
    )
    args = parser.parse_args()
    if args.days < 3:
        parser.error("--days must be at least 3: 48 h of raw results, then rollups")

    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        stem = f"bench-{args.endpoints}x{args.days}d-{args.raw_endpoints}raw"
        path, saved = Path(args.keep) / f"{stem}.db", Path(args.keep) / f"{stem}.json"
        if not saved.exists():
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)
        run(f"sqlite:///{path.resolve()}", args, saved)
    else:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as scratch:
            run(f"sqlite:///{scratch}/bench.db", args)
    if args.postgres:
        with postgres_schema(args.postgres) as url:
            run(url, args)


if __name__ == "__main__":
    main()
