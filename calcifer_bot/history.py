"""Check history: five-minute rollups, uptime, latency series and the graph PNG.

Raw ``check_results`` are kept for ``raw_retention`` (48 h by default); after
that :func:`rollup` folds them into one ``check_rollups`` row per endpoint and
five minutes, kept for ``rollup_retention``. At a 60 s interval that is 2,880
raw rows per endpoint plus 288 rollup rows per day of history, instead of
1,440 raw rows per day forever.

Everything here is a plain function of a SQLAlchemy ``Session``, to be run
inside ``Database.read`` / ``Database.write``; nothing commits on its own.
The SQL is the portable subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import (
    CursorResult,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from calcifer_bot.errors import IntegrationError, NotFound
from calcifer_bot.models import CheckResult, CheckRollup, Endpoint, Incident

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BUCKET = timedelta(minutes=5)

# Endpoints folded per pass: their old raw rows are found through the
# (endpoint_id, checked_at) index, one seek per endpoint, never a table scan.
# Few statements per run matter: at 10,000 endpoints, most have 5 rows to fold.
ENDPOINT_BATCH = 500
# Raw rows held in memory at once (~100 bytes each in Python): a first run over
# weeks of backlog, or 10,000 endpoints' hour, never loads everything.
CHUNK_ROWS = 20_000
# Values per IN (...) list: under SQLite's and every driver's bind-parameter limit.
_IN_LIMIT = 500
# Any fixed number: replicas sharing a PostgreSQL database roll up one at a time.
_ROLLUP_LOCK = 0x6361_6C72

# Graphs draw at most this many points: a 30-day series is ~11,000.
MAX_GRAPH_POINTS = 2000

T = TypeVar("T")

# Table objects for the hot reads: Core rows skip the ORM's result machinery,
# which costs more than the database itself for thousands of small rows.
_RAW = cast(Table, CheckResult.__table__)
_ROLLUPS = cast(Table, CheckRollup.__table__)
# Built once: the rollup runs it hundreds of times per pass.
_DELETE_RAW_BY_ID = delete(_RAW).where(_RAW.c.id.in_(bindparam("ids", expanding=True)))


def bucket_start(t: datetime) -> datetime:
    """The start of the five-minute bucket ``t`` falls in, in UTC."""
    if t.tzinfo is None:
        raise ValueError("naive datetime given; Calcifer uses UTC-aware times only")
    t = t.astimezone(UTC)
    return t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)


# -- rollups ------------------------------------------------------------------


@dataclass
class RollupStats:
    """What one :func:`rollup` did.

    ``raw_deleted`` counts every raw row removed: the ``raw_rolled`` ones, plus
    rows so old that their bucket would have been pruned at once.
    """

    raw_rolled: int = 0
    raw_deleted: int = 0
    rollups_deleted: int = 0


@dataclass
class _Bucket:
    """Accumulates one (endpoint, bucket) from raw rows."""

    checks: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def row(self, endpoint_id: int, bucket: datetime) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "endpoint_id": endpoint_id,
            "bucket": bucket,
            "checks": self.checks,
            "failures": self.failures,
            "latency_p50_ms": percentile(lat, 0.50),
            "latency_p95_ms": percentile(lat, 0.95),
            "latency_max_ms": lat[-1] if lat else None,
        }


def rollup(
    session: Session, now: datetime, raw_retention: timedelta, rollup_retention: timedelta
) -> RollupStats:
    """Fold raw results older than ``raw_retention`` into rollups; prune old rollups.

    Run it in ``Database.write``, as often as every five minutes: each run only
    touches what aged out since the last (at 60 s, 5 rows per endpoint), and
    running it twice is harmless.
    Rows are processed in chunks of at most ``CHUNK_ROWS``, endpoint batch by
    endpoint batch, so a backlog of millions of rows needs no more memory than
    an ordinary run (it does all happen in the caller's one transaction).
    """
    # Both cutoffs are bucket boundaries: a bucket is rolled up whole, in one run,
    # and never half raw, half rolled up (unless a late row arrives).
    raw_cutoff = bucket_start(now - raw_retention)
    rollup_cutoff = bucket_start(now - rollup_retention)
    if session.get_bind().dialect.name == "postgresql":
        # Two replicas rolling up at once would both insert the same buckets; the
        # second waits here, then finds nothing left to do. Released at commit.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ROLLUP_LOCK})
    stats = RollupStats()
    # Results of a removed endpoint went with it (ON DELETE CASCADE), so walking
    # the endpoints finds every raw row there is. 10,000 ids are nothing to hold.
    endpoint_ids = list(session.scalars(select(Endpoint.id).order_by(Endpoint.id)))
    for batch in _slices(endpoint_ids, ENDPOINT_BATCH):
        _fold(session, list(batch), raw_cutoff, rollup_cutoff, stats)
        stats.rollups_deleted += _rowcount(
            session.execute(
                delete(CheckRollup)
                .where(CheckRollup.endpoint_id.in_(batch), CheckRollup.bucket < rollup_cutoff)
                .execution_options(synchronize_session=False)
            )
        )
    return stats


def _fold(
    session: Session,
    endpoint_ids: list[int],
    cutoff: datetime,
    expired: datetime,
    stats: RollupStats,
) -> None:
    """Roll up the raw rows of ``endpoint_ids`` older than ``cutoff``, a chunk at a time.

    Counting first lets endpoints be grouped into chunks of at most CHUNK_ROWS
    rows, each fetched with one unordered query; an endpoint with more than that
    (a backlog) is paged through on its own in time order, which its index
    delivers without sorting. One ordered query over many endpoints would not
    do: PostgreSQL sorts every old row of the batch for each page.
    """
    old = (
        select(_RAW.c.endpoint_id, func.count(), func.min(_RAW.c.checked_at))
        .where(_RAW.c.endpoint_id.in_(endpoint_ids), _RAW.c.checked_at < cutoff)
        .group_by(_RAW.c.endpoint_id)
    )
    counts = session.execute(old).all()
    # Raw rows older than the rollup retention would be pruned as soon as they
    # were rolled up: drop them directly (a restored backup, a long stop).
    ancient = [e for e, _, oldest in counts if oldest < expired]
    if ancient:
        stats.raw_deleted += _rowcount(
            session.execute(
                delete(_RAW).where(_RAW.c.endpoint_id.in_(ancient), _RAW.c.checked_at < expired)
            )
        )
        counts = session.execute(old).all()
    group: list[int] = []
    size = 0
    for endpoint_id, n, _ in counts:
        if n > CHUNK_ROWS:
            _fold_backlog(session, endpoint_id, cutoff, stats)
            continue
        if group and size + n > CHUNK_ROWS:
            _fold_rows(session, _old_rows(session, group, cutoff), stats)
            group, size = [], 0
        group.append(endpoint_id)
        size += n
    if group:
        _fold_rows(session, _old_rows(session, group, cutoff), stats)


def _old_rows(session: Session, endpoint_ids: list[int], cutoff: datetime) -> Sequence[Any]:
    # Table columns, not ORM attributes: plain Core rows, much cheaper to fetch.
    return session.execute(
        select(
            _RAW.c.id, _RAW.c.endpoint_id, _RAW.c.checked_at, _RAW.c.ok, _RAW.c.latency_ms
        ).where(_RAW.c.endpoint_id.in_(endpoint_ids), _RAW.c.checked_at < cutoff)
    ).all()


def _fold_backlog(session: Session, endpoint_id: int, cutoff: datetime, stats: RollupStats) -> None:
    while True:
        # No offset or keyset needed: each page deletes what it folded, so the
        # next query starts where this one stopped.
        rows = session.execute(
            select(_RAW.c.id, _RAW.c.endpoint_id, _RAW.c.checked_at, _RAW.c.ok, _RAW.c.latency_ms)
            .where(_RAW.c.endpoint_id == endpoint_id, _RAW.c.checked_at < cutoff)
            .order_by(_RAW.c.checked_at)
            .limit(CHUNK_ROWS)
        ).all()
        if not rows:
            return
        _fold_rows(session, rows, stats, cut=len(rows) == CHUNK_ROWS)


def _fold_rows(
    session: Session, rows: Sequence[Any], stats: RollupStats, *, cut: bool = False
) -> None:
    """Fold fetched raw rows into rollups and delete them.

    ``cut``: the rows are a page in time order that the limit may have ended in
    the middle of a bucket.
    """
    # Keyed by (endpoint, bucket number since the epoch): ints hash far faster
    # than aware datetimes, and this loop sees every raw row.
    step = int(BUCKET.total_seconds())
    numbered: dict[tuple[int, int], _Bucket] = {}
    for row_id, endpoint_id, checked_at, ok, latency_ms in rows:
        key = (endpoint_id, int(checked_at.timestamp()) // step)
        acc = numbered.get(key)
        if acc is None:
            acc = numbered[key] = _Bucket()
        acc.checks += 1
        acc.ids.append(row_id)
        if not ok:
            acc.failures += 1
        elif latency_ms is not None:
            acc.latencies.append(latency_ms)
    if cut and len(numbered) > 1:
        # Leave the last bucket for the next page, which starts with it, so it
        # is rolled up whole and exact. (A single bucket bigger than a page is
        # rolled up in parts, merged approximately: see _merge.)
        numbered.popitem()
    buckets = {(e, datetime.fromtimestamp(n * step, UTC)): acc for (e, n), acc in numbered.items()}
    _store(session, buckets)
    ids = [i for acc in buckets.values() for i in acc.ids]
    # By id, not by time range: a row inserted meanwhile is never deleted unrolled.
    for part in _slices(ids, _IN_LIMIT):
        session.execute(_DELETE_RAW_BY_ID, {"ids": part})
    stats.raw_rolled += len(ids)
    stats.raw_deleted += len(ids)


def _store(session: Session, buckets: dict[tuple[int, datetime], _Bucket]) -> None:
    """Insert the new rollup rows; merge into rows that already exist for the same key."""
    # A bucket newer than an endpoint's newest rollup cannot exist yet, and that
    # is nearly every bucket: look up only the others (late rows, a bucket the
    # chunk limit cut in two). One PK seek per endpoint, not one per bucket.
    endpoint_ids = sorted({e for e, _ in buckets})
    newest_bucket = (
        select(func.max(CheckRollup.bucket))
        .where(CheckRollup.endpoint_id == Endpoint.id)
        .correlate(Endpoint)
        .scalar_subquery()
    )
    newest: dict[int, datetime | None] = {}
    for part in _slices(endpoint_ids, _IN_LIMIT):
        rows = session.execute(select(Endpoint.id, newest_bucket).where(Endpoint.id.in_(part)))
        newest.update((e, b) for e, b in rows)
    candidates: dict[int, list[datetime]] = {}
    for e, b in buckets:
        last = newest.get(e)
        if last is not None and b <= last:
            candidates.setdefault(e, []).append(b)
    existing: dict[tuple[int, datetime], Any] = {}
    for e, found in candidates.items():
        for row in session.execute(
            select(
                CheckRollup.endpoint_id,
                CheckRollup.bucket,
                CheckRollup.checks,
                CheckRollup.failures,
                CheckRollup.latency_p50_ms,
                CheckRollup.latency_p95_ms,
                CheckRollup.latency_max_ms,
            ).where(
                CheckRollup.endpoint_id == e,
                CheckRollup.bucket >= min(found),
                CheckRollup.bucket <= max(found),
            )
        ):
            existing[(row.endpoint_id, row.bucket)] = row
    inserts, updates = [], []
    for (endpoint_id, bucket), acc in buckets.items():
        new = acc.row(endpoint_id, bucket)
        old = existing.get((endpoint_id, bucket))
        if old is None:
            inserts.append(new)
        else:
            updates.append(_merge(old, new, len(acc.latencies)))
    if inserts:
        session.execute(insert(CheckRollup), inserts)
    if updates:
        session.execute(update(CheckRollup), updates)  # bulk UPDATE by primary key


def _merge(old: Any, new: dict[str, Any], new_samples: int) -> dict[str, Any]:
    """One rollup row from an existing row and one built from late raw rows.

    Counts add up and the maximum is exact. The percentiles are approximate: the
    raw values behind the old row are gone, so p50 and p95 become the means of
    the two rows' percentiles weighted by their number of latency samples (the
    old row's taken as its successful checks). Late rows are rare, so this stays
    close.
    """
    old_samples = old.checks - old.failures
    merged = dict(new)
    merged["checks"] = old.checks + new["checks"]
    merged["failures"] = old.failures + new["failures"]
    merged["latency_max_ms"] = _max(old.latency_max_ms, new["latency_max_ms"])
    for key, old_value in (
        ("latency_p50_ms", old.latency_p50_ms),
        ("latency_p95_ms", old.latency_p95_ms),
    ):
        merged[key] = _weighted([(old_value, old_samples), (new[key], new_samples)])
    return merged


# -- uptime -------------------------------------------------------------------


@dataclass(frozen=True)
class Uptime:
    """An endpoint's record over a window ending now.

    ``uptime_pct`` is time-based: the share of the observed time (from the
    window's start, or the endpoint's creation if later) not covered by an
    incident; None when nothing is known (no time observed, or no check and no
    incident in the window). ``checks`` and ``failures`` count the checks.
    ``p50_ms`` and ``p95_ms`` are exact over the raw results and approximate
    over rolled-up buckets (see :func:`uptime`).
    """

    window: timedelta
    checks: int
    failures: int
    uptime_pct: float | None
    downtime: timedelta
    p50_ms: float | None
    p95_ms: float | None
    incidents: int
    open_incident: bool


def uptime(session: Session, endpoint_id: int, window: timedelta, now: datetime) -> Uptime:
    """Uptime, check counts, latency percentiles and incidents over ``window``.

    Four index-range queries on this endpoint's rows, whatever the size of the
    database: the rolled-up part is aggregated in SQL (SUM over its rollups),
    and the only rows fetched are this endpoint's raw results, ``ok`` and
    latency (bounded by the raw retention: 2,880 at 60 s).

    The latency percentiles are exact over the raw part of the window. Rolled-up
    buckets only keep their own p50/p95, and percentiles do not add up, so over
    them p50/p95 are the means of the buckets' percentiles weighted by their
    successful checks, combined with the raw part the same way. That is close
    for steady latency; it understates p95 when the slow checks are bunched in
    a few buckets. Buckets count when they start inside the window: at most five
    minutes at the window's start may be left out.
    """
    created_at = session.scalar(select(Endpoint.created_at).where(Endpoint.id == endpoint_id))
    if created_at is None:
        raise NotFound(f"there is no endpoint with id {endpoint_id}")
    start = now - window

    # One pass over the raw part (at most raw_retention / interval rows: 2,880 at
    # 60 s) gives its counts and its latencies. A separate COUNT would cost as
    # much again: ``ok`` is not in the (endpoint_id, checked_at) index, so it
    # reads the same table rows.
    raw = session.execute(
        select(_RAW.c.ok, _RAW.c.latency_ms).where(
            _RAW.c.endpoint_id == endpoint_id,
            _RAW.c.checked_at >= start,
            _RAW.c.checked_at <= now,
        )
    ).all()
    raw_checks = len(raw)
    raw_failures = sum(1 for ok, _ in raw if not ok)
    latencies = sorted(lat for ok, lat in raw if ok and lat is not None)

    successes = CheckRollup.checks - CheckRollup.failures
    rolled = session.execute(
        select(
            func.coalesce(func.sum(CheckRollup.checks), 0),
            func.coalesce(func.sum(CheckRollup.failures), 0),
            func.sum(case((CheckRollup.latency_p50_ms.is_not(None), successes), else_=0)),
            func.sum(CheckRollup.latency_p50_ms * successes),
            func.sum(CheckRollup.latency_p95_ms * successes),
        ).where(
            CheckRollup.endpoint_id == endpoint_id,
            CheckRollup.bucket >= start,
            CheckRollup.bucket <= now,
        )
    ).one()
    roll_checks, roll_failures, roll_weight, p50_sum, p95_sum = rolled
    roll_weight = int(roll_weight or 0)

    def combined(q: float, weighted_sum: float | None) -> float | None:
        rolled_value = (
            weighted_sum / roll_weight if roll_weight and weighted_sum is not None else None
        )
        return _weighted([(percentile(latencies, q), len(latencies)), (rolled_value, roll_weight)])

    incidents = _incidents(session, endpoint_id, start, now)
    observed_from = max(start, created_at)
    observed = max(now - observed_from, timedelta(0))
    downtime = _covered(incidents, observed_from, now)
    checks = int(raw_checks) + int(roll_checks)
    known = observed > timedelta(0) and (checks > 0 or bool(incidents))
    return Uptime(
        window=window,
        checks=checks,
        failures=int(raw_failures) + int(roll_failures),
        uptime_pct=100.0 * (1.0 - downtime / observed) if known else None,
        downtime=downtime,
        p50_ms=combined(0.50, p50_sum),
        p95_ms=combined(0.95, p95_sum),
        incidents=len(incidents),
        open_incident=any(resolved is None for _, resolved in incidents),
    )


def _incidents(
    session: Session, endpoint_id: int, start: datetime, now: datetime
) -> list[tuple[datetime, datetime | None]]:
    """(started_at, resolved_at) of the endpoint's incidents overlapping [start, now]."""
    rows = session.execute(
        select(Incident.started_at, Incident.resolved_at)
        .where(
            Incident.endpoint_id == endpoint_id,
            Incident.started_at <= now,
            or_(Incident.resolved_at.is_(None), Incident.resolved_at > start),
        )
        .order_by(Incident.started_at)
    )
    return [(started, resolved) for started, resolved in rows]


def _clip(
    incidents: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Incidents as closed periods inside [start, end], overlapping ones merged.

    An open incident lasts until ``end`` (now). Merging keeps time from being
    counted twice should two incidents of one endpoint ever overlap.
    """
    periods = sorted(
        (max(s, start), min(r or end, end)) for s, r in incidents if min(r or end, end) > start
    )
    merged: list[tuple[datetime, datetime]] = []
    for s, e in periods:
        if s >= e:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _covered(
    incidents: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> timedelta:
    return sum((e - s for s, e in _clip(incidents, start, end)), timedelta(0))


# -- series and graph -----------------------------------------------------------


@dataclass
class Series:
    """Latency over a window and the periods the endpoint was down.

    ``points`` hold each raw check's latency (None for a failed check, so a
    line breaks there) and, for the rolled-up past, each bucket's p50 at the
    bucket's start. ``start`` and ``end`` are the window's, so a graph spans
    the whole window even where there is no data.
    """

    points: list[tuple[datetime, float | None]]
    down: list[tuple[datetime, datetime]]
    start: datetime | None = None
    end: datetime | None = None


def series(session: Session, endpoint_id: int, window: timedelta, now: datetime) -> Series:
    """The latency points and down periods of one endpoint over ``window``."""
    start = now - window
    rolled = session.execute(
        select(_ROLLUPS.c.bucket, _ROLLUPS.c.latency_p50_ms)
        .where(
            _ROLLUPS.c.endpoint_id == endpoint_id,
            _ROLLUPS.c.bucket >= start,
            _ROLLUPS.c.bucket <= now,
        )
        .order_by(_ROLLUPS.c.bucket)
    )
    raw = session.execute(
        select(_RAW.c.checked_at, _RAW.c.ok, _RAW.c.latency_ms)
        .where(
            _RAW.c.endpoint_id == endpoint_id,
            _RAW.c.checked_at >= start,
            _RAW.c.checked_at <= now,
        )
        .order_by(_RAW.c.checked_at)
    )
    points: list[tuple[datetime, float | None]] = [(b, p50) for b, p50 in rolled]
    points += [(at, latency if ok else None) for at, ok, latency in raw]
    # Rollups come before raw rows in time, except after a late row: sorting the
    # nearly sorted list is linear.
    points.sort(key=lambda p: p[0])
    down = _clip(_incidents(session, endpoint_id, start, now), start, now)
    return Series(points=points, down=down, start=start, end=now)


def downsample(
    points: Sequence[tuple[datetime, float | None]], limit: int = MAX_GRAPH_POINTS
) -> list[tuple[datetime, float | None]]:
    """At most ``limit`` of ``points`` (in time order) that still show every spike.

    The time range is cut into ``limit // 2`` bins and each keeps its lowest
    and highest point (min-max decimation): a mean would flatten the one slow
    check someone is looking for. A bin with no latency at all keeps a gap.
    """
    if len(points) <= limit:
        return list(points)
    bins = max(limit // 2, 1)
    first, last = points[0][0], points[-1][0]
    span = (last - first).total_seconds() or 1.0
    lows: list[tuple[datetime, float] | None] = [None] * bins
    highs: list[tuple[datetime, float] | None] = [None] * bins
    seen: list[datetime | None] = [None] * bins
    for at, value in points:
        i = min(int((at - first).total_seconds() / span * bins), bins - 1)
        if seen[i] is None:
            seen[i] = at
        if value is None:
            continue
        low, high = lows[i], highs[i]
        if low is None or value < low[1]:
            lows[i] = (at, value)
        if high is None or value > high[1]:
            highs[i] = (at, value)
    out: list[tuple[datetime, float | None]] = []
    for i in range(bins):
        low, high, first_at = lows[i], highs[i], seen[i]
        if first_at is None:
            continue
        if low is None or high is None:
            out.append((first_at, None))
        elif low[0] == high[0]:
            out.append(low)
        else:
            out.extend(sorted((low, high)))
    return out


def window_label(window: timedelta) -> str:
    """``24h``, ``48h``, ``7d``, ``90m``: how people write the windows they ask for."""
    seconds = round(window.total_seconds())
    if seconds % 86400 == 0 and seconds >= 3 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def render_graph(name: str, series: Series, window: timedelta) -> bytes:
    """A PNG of the latency line (ms) with the down periods shaded red.

    matplotlib is optional (``calcifer[charts]``) and imported here, on first
    use; without it this raises an IntegrationError saying how to get it.
    """
    fig = figure(name, series, window)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def figure(name: str, series: Series, window: timedelta) -> Figure:
    """The graph as a matplotlib Figure (what :func:`render_graph` saves).

    Built from ``matplotlib.figure.Figure`` on an Agg canvas, never through
    pyplot: no GUI backend is ever chosen (so no ``matplotlib.use`` either),
    and nothing global is shared between worker threads drawing at once.
    """
    try:
        import matplotlib  # noqa: F401  (first: a blocked matplotlib fails here)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
        from matplotlib.figure import Figure
    except ImportError:
        raise IntegrationError(
            "charts need matplotlib: pip install 'calcifer[charts]'", permanent=True
        ) from None

    points = downsample(series.points)
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # Title on the left, legend on the right above the plot: neither hides data.
    ax.set_title(f"{name} — latency, last {window_label(window)}", loc="left")
    # Matplotlib's own date numbers (days since the epoch, UTC): what its date
    # axis works in, and what its type hints ask for.
    xs = [float(date2num(at)) for at, _ in points]
    ys = [math.nan if v is None else v for _, v in points]  # NaN breaks the line
    if points:
        ax.plot(xs, ys, color="#1f77b4", linewidth=0.9, label="latency (ms)")
    for i, (down_from, down_to) in enumerate(series.down):
        ax.axvspan(
            float(date2num(down_from)),
            float(date2num(down_to)),
            color="#d62728",
            alpha=0.25,
            linewidth=0,
            label="down" if i == 0 else None,
        )
    if all(math.isnan(y) for y in ys):
        ax.text(
            0.5,
            0.5,
            "no latency data in this window",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="grey",
        )
        ax.set_ylim(0, 1)
        ax.set_yticks([])  # a scale of nothing would only mislead
    else:
        ax.set_ylim(bottom=0)
    # The whole window, even where there is no data yet.
    end = series.end or (points[-1][0] if points else None)
    if end is not None:
        start = series.start or end - window
        ax.set_xlim(float(date2num(start)), float(date2num(end)))
    locator = AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, alpha=0.3)
    if points or series.down:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)
    return fig


# -- helpers ------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted values, linear between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _weighted(parts: Iterable[tuple[float | None, int]]) -> float | None:
    """Mean of the known values weighted by their counts; None when none is known."""
    known = [(v, w) for v, w in parts if v is not None and w > 0]
    total = sum(w for _, w in known)
    if not total:
        return None
    return sum(v * w for v, w in known) / total


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _slices(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount
