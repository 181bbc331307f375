"""How much does it cost to keep 10,000 endpoints checked every 60 s?

The target (issue): 10,000 tcp endpoints at a 60 s interval take under 15 % of
one core and under 150 MB RSS. Two designs are measured, each in a subprocess
of its own so that its RSS is its own:

``a``  Calcifer's :class:`calcifer_bot.scheduler.Scheduler`: one APScheduler job
       ticks once a second and starts the due checks from a heap; the results
       of a tick are written in one transaction (``Engine.apply``).
``b``  The alternative: one APScheduler ``interval`` job per endpoint
       (``max_instances=1``, ``coalesce=True``, start spread with
       ``next_run_time``), each doing the same check and appending its result to
       a batch that a 1 s job writes with ``Engine.apply``.
``ar`` Design a after a restart: the process stopped 5 minutes ago, so every
       endpoint is overdue at load, its last checks spread over one interval as
       a running scheduler leaves them (does the load stay spread?).

Every check is real: a TCP connect through the monitoring integration to a
local asyncio server (in the parent process, so its CPU is not counted) that
accepts and closes. Endpoints start in the steady state (up, 20 good results
in ``recent``), so flap detection runs on every result as it does in
production. The database is a SQLite file per design, copied from one built
with ``endpoints.build()`` at start-up.

Measured over the run, per design: CPU seconds of the whole process (event
loop plus the worker threads writing SQLite) over wall time = share of one
core; peak RSS (VmHWM: ru_maxrss of an exec'd child includes its parent's peak)
and final RSS; checks done (rows in ``check_results``); the most checks in any
one second against the mean; the mean gap between two checks of one endpoint
(the effective interval). A second table splits the CPU by thread.

    python benchmarks/bench_scheduler.py [--endpoints 10000] [--seconds 120] [--quick]
        [--design a,b,ar] [--loop asyncio|uvloop] [--series] [--profile]

``--series`` prints the checks of every second; ``--profile`` prints the top
functions of the event-loop thread (cProfile, which slows it) to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import itertools
import json
import logging
import os
import pstats
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

import integrations
from calcifer_bot import history
from calcifer_bot.aio import blocking
from calcifer_bot.config import load_settings
from calcifer_bot.core import utcnow
from calcifer_bot.db import Database
from calcifer_bot.endpoints import Definition, build
from calcifer_bot.engine import Engine, Observation
from calcifer_bot.models import Endpoint
from calcifer_bot.scheduler import GOLDEN, ROLLUP, Scheduler, _observation, _plan
from integrations.monitoring import push_result

CPU_TARGET = 15.0  # % of one core
RSS_TARGET = 150.0  # MB
INTERVAL = 60.0
DESIGNS = {
    "a": "A heap + 1 s tick",
    "b": "B job per endpoint",
    "ar": "A after restart",
}
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- measuring


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def peak_rss_mb() -> float:
    """The high-water mark of this process's RSS.

    VmHWM, not ru_maxrss: after fork and exec, ru_maxrss carries on the parent's peak
    (Linux folds the old memory map's high-water mark into it at exec), so a child
    started by a parent of 130 MB reports at least 130 MB whatever it uses itself.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sys_s() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds per kind of thread, from /proc/self/task/TID/stat."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    out: dict[str, float] = defaultdict(float)
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        used = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        name = names.get(int(tid), "")
        if int(tid) == main:
            kind = "event loop"
        elif name.startswith("calcifer-blocking"):
            kind = "db workers"
        elif name.startswith("asyncio"):
            kind = "getaddrinfo"  # the loop's default executor
        else:
            kind = "other"
        out[kind] += used
    return dict(out)


# --------------------------------------------------------------------------- the target


class _AcceptAndClose(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def start_server() -> int:
    """A TCP server on 127.0.0.1 in a thread of the parent; returns its port."""
    ready: list[int] = []
    started = threading.Event()

    def serve() -> None:
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(
            loop.create_server(_AcceptAndClose, "127.0.0.1", 0, backlog=4096)
        )
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        loop.run_forever()

    threading.Thread(target=serve, name="tcp-target", daemon=True).start()
    started.wait()
    return ready[0]


# --------------------------------------------------------------------------- the database


def build_database(path: Path, endpoints: int, port: int) -> float:
    """Migrate a SQLite file and insert the endpoints in one transaction; returns seconds."""
    started = time.perf_counter()
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    now = utcnow()
    since = now - timedelta(days=1)
    with Session(db.engine) as session, session.begin():
        rows = []
        for i in range(endpoints):
            d = Definition(
                name=f"tcp-{i:05d}",
                type="tcp",
                target=f"127.0.0.1:{port}",
                interval=timedelta(seconds=INTERVAL),
                timeout=timedelta(seconds=5),
            )
            ep = build(d, session, now, source="config")
            # The steady state: up for a day, a full flap window of good results.
            ep.state, ep.state_since, ep.streak_since = "up", since, since
            ep.ok_streak, ep.fail_streak, ep.recent, ep.flapping = 20, 0, "1" * 20, False
            rows.append(
                {
                    c.key: getattr(ep, c.key)
                    for c in Endpoint.__table__.columns
                    if getattr(ep, c.key) is not None
                }
            )
        session.execute(insert(Endpoint), rows)
    db.dispose()
    return time.perf_counter() - started


def copy_database(template: Path, path: Path, *, restart: bool) -> None:
    src, dst = sqlite3.connect(template), sqlite3.connect(path)
    src.backup(dst)
    src.close()
    if restart:  # stopped five minutes ago: every endpoint is overdue
        last = (datetime.now(UTC) - timedelta(minutes=5)).replace(tzinfo=None)
        dst.execute(
            "UPDATE endpoints"
            " SET last_checked_at = datetime(?, '-' || (id * 37 % 60) || ' seconds')",
            (last.isoformat(sep=" "),),
        )
        dst.commit()
    dst.close()


WARM_UP = 5  # seconds: the first tick also starts what fell due while the endpoints loaded


def count_checks(path: Path, t0: float, t1: float, phase: float) -> dict[str, Any]:
    """Checks in the window [t0, t1): how many, how evenly, how often per endpoint.

    Seconds are counted with their edges half-way between two ticks of design A (``phase``
    is when its 1 s job was added), so that a tick's burst is not split between two seconds.
    """
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT endpoint_id, checked_at FROM check_results").fetchall()
    conn.close()
    origin = t0 + (phase + 0.5 - t0) % 1.0 - 1.0
    per_second: Counter[int] = Counter()
    per_tenth: Counter[int] = Counter()
    times: dict[int, list[float]] = defaultdict(list)
    checks = 0
    for endpoint_id, text in rows:
        at = datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
        times[endpoint_id].append(at)
        if t0 <= at < t1:
            checks += 1
            per_second[int(at - origin)] += 1
            per_tenth[int((at - t0) * 10)] += 1
    # Whole seconds only: not the one cut by t0, nor the one cut by t1.
    counts = [per_second.get(s, 0) for s in range(1, int(t1 - origin))]
    steady = counts[WARM_UP:] or counts
    gaps = []
    for ts in times.values():
        ts.sort()
        gaps += [b - a for a, b in itertools.pairwise(ts)]
    return {
        "checks": checks,
        "max_per_s": max(steady),
        "min_per_s": min(steady),
        "mean_per_s": sum(steady) / len(steady),
        "warm_up_max_per_s": max(counts[:WARM_UP]),
        "max_per_100ms": max(per_tenth.values(), default=0),
        "mean_gap_s": sum(gaps) / len(gaps) if gaps else None,
        "checked_endpoints": len(times),
        "series": counts,
    }


# --------------------------------------------------------------------------- design B


class PerJobScheduler:
    """Design B: one APScheduler interval job per endpoint, results written by a 1 s job.

    The same work as :class:`Scheduler`: the same plan per endpoint, the same first-run
    spread, the same concurrency limit, check and observation, the same batch write,
    housekeeping every 10 s and a rollup every 5 minutes. What differs is who decides
    that a check is due: APScheduler's job store instead of the heap.
    """

    def __init__(self, engine: Engine, clock: Any) -> None:
        self.engine = engine
        self.clock = clock
        self._results: list[Observation] = []
        self._limit = asyncio.Semaphore(engine.settings.monitoring.concurrency)

    async def load(self, aps: AsyncIOScheduler) -> int:
        rows = await self.engine.db.read(lambda s: list(s.scalars(select(Endpoint))))
        now = self.clock()
        for ep in rows:
            plan = _plan(ep)
            spread = (ep.id * GOLDEN) % 1.0 * min(plan.interval_s, 60.0)
            aps.add_job(
                self._check,
                "interval",
                seconds=plan.interval_s,
                args=[plan],
                id=f"check-{ep.id}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=5,  # as Calcifer's tick: a busy loop must not drop checks
                next_run_time=now + timedelta(seconds=spread),
            )
        aps.add_job(
            self.flush,
            "interval",
            seconds=1,
            id="flush",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=5,
        )
        aps.add_job(
            self.engine.housekeeping,
            "interval",
            seconds=10,
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
        aps.add_job(
            self._rollup,
            "interval",
            seconds=ROLLUP.total_seconds(),
            id="rollup",
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
        return len(rows)

    async def _check(self, plan: Any) -> None:
        if plan.target is None:  # a push endpoint: judged by its heartbeats, as in A
            result = push_result(plan.last_push_at, plan.interval_s, self.clock())
        else:
            async with self._limit:
                monitoring = integrations.get("monitoring")
                result = await monitoring.check(plan.target)  # type: ignore[attr-defined]
        self._results.append(_observation(plan.id, self.clock(), result))

    async def flush(self) -> None:
        batch, self._results = self._results, []
        if batch:
            await self.engine.apply(batch)  # fixed interval: the delays are not used

    async def _rollup(self) -> None:
        now, policy = self.clock(), self.engine.policy
        await self.engine.db.write(
            lambda s: history.rollup(s, now, policy.raw_retention, policy.rollup_retention)
        )

    async def stop(self) -> None:
        await self.flush()


# --------------------------------------------------------------------------- one design


async def run_design(design: str, url: str, seconds: float, profile: bool) -> dict[str, Any]:
    settings = load_settings(environ={"CALCIFER_DATABASE_URL": url})
    integrations.configure(settings)
    db = Database(url)
    await blocking(db.upgrade)  # at head already: opens the pool threads, as the bot does
    engine = Engine(settings, db, utcnow)
    rss_start = rss_mb()

    loaded = time.perf_counter()
    aps = AsyncIOScheduler(timezone=UTC)
    runner: Scheduler | PerJobScheduler
    if design == "b":
        runner = per_job = PerJobScheduler(engine, utcnow)
        count = await per_job.load(aps)
        phase = time.time()
    else:
        runner = heap = Scheduler(engine, utcnow)
        count = await heap.load()
        phase = time.time()  # its interval trigger ticks at whole seconds from now
        heap.start(aps)
    load_s = time.perf_counter() - loaded
    # Runs APScheduler missed (late past the grace time) or refused (max_instances).
    skipped: Counter[str] = Counter()
    aps.add_listener(
        lambda e: skipped.update([e.job_id]), EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
    )
    for _ in range(3):
        await asyncio.sleep(0)  # the loop lets go of the last executor result (the rows)
    gc.collect()
    rss_loaded = rss_mb()

    profiler = cProfile.Profile() if profile else None
    cpu0, sys0, threads0 = cpu_s(), sys_s(), thread_cpu()
    wall0, t0 = time.perf_counter(), time.time()
    if profiler:
        profiler.enable()
    aps.start()
    tty = sys.stderr.isatty()
    end = wall0 + seconds
    next_report = wall0 + 10
    while (left := end - time.perf_counter()) > 0:
        await asyncio.sleep(min(left, 1.0))
        now = time.perf_counter()
        if tty and now >= next_report and now < end:
            next_report += 10
            share = 100 * (cpu_s() - cpu0) / (now - wall0)
            print(
                f"  [{design}] {now - wall0:5.0f}/{seconds:.0f} s  CPU {share:5.1f} %  "
                f"RSS {rss_mb():6.1f} MB",
                file=sys.stderr,
            )
    wall = time.perf_counter() - wall0
    cpu, system, threads, t1 = cpu_s() - cpu0, sys_s() - sys0, thread_cpu(), time.time()
    if profiler:
        profiler.disable()
    rss_end, peak = rss_mb(), peak_rss_mb()

    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)  # checks cancelled at shutdown
    aps.shutdown(wait=False)
    await runner.stop()
    await integrations.close_all()
    await blocking(db.dispose)

    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(30)
        print(f"---- cProfile of the event-loop thread, design {design} ----", file=sys.stderr)
        print(out.getvalue(), file=sys.stderr)

    return {
        "design": design,
        "endpoints": count,
        "load_s": load_s,
        "wall_s": wall,
        "t0": t0,
        "phase": phase,
        "t1": t1,
        "cpu_s": cpu,
        "cpu_pct": 100 * cpu / wall,
        "sys_pct": 100 * system / wall,
        "threads": {k: v - threads0.get(k, 0.0) for k, v in threads.items()},
        "rss_start_mb": rss_start,
        "rss_loaded_mb": rss_loaded,
        "rss_end_mb": rss_end,
        "peak_rss_mb": peak,
        "skipped": sum(skipped.values()),
        "skipped_ticks": skipped.get("calcifer-checks", 0),
    }


def child_main(args: argparse.Namespace) -> None:
    # A missed or refused run is counted (the 'skipped' column), not logged line by line.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    url = f"sqlite:///{args.db}"
    coro = run_design(args.child, url, args.seconds, args.profile)
    if args.loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(coro)
    else:
        result = asyncio.run(coro)
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- the parent


def run_child(design: str, db: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        design,
        "--db",
        str(db),
        "--seconds",
        str(args.seconds),
        "--loop",
        args.loop,
    ]
    if args.profile:
        cmd.append("--profile")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"design {design} failed (exit {done.returncode}):\n{done.stdout}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(count_checks(db, result["t0"], result["t1"], result["phase"]))
    return result


def verdict(r: dict[str, Any]) -> str:
    cpu_ok, rss_ok = r["cpu_pct"] < CPU_TARGET, r["peak_rss_mb"] < RSS_TARGET
    if cpu_ok and rss_ok:
        return "PASS"
    return "FAIL (" + ", ".join(w for w, ok in (("CPU", cpu_ok), ("RSS", rss_ok)) if not ok) + ")"


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.endpoints} tcp endpoints at {INTERVAL:g} s (expect {args.endpoints / INTERVAL:.0f}"
        f" checks/s), {args.seconds:g} s per design, {args.loop} loop; "
        f"targets: CPU < {CPU_TARGET:g} % of one core, RSS < {RSS_TARGET:g} MB"
    )
    head = (
        f"{'design':<20}{'endpts':>7}{'wall s':>7}{'checks':>7}{'chk/s':>7}{'CPU %':>7}"
        f"{'peak MB':>8}{'end MB':>7}{'max/s':>6}{'mean/s':>7}{'min/s':>6}{'gap s':>7}"
        f"{'load s':>7}  verdict"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        gap = f"{r['mean_gap_s']:.2f}" if r["mean_gap_s"] is not None else "-"
        print(
            f"{DESIGNS[r['design']]:<20}{r['endpoints']:>7}{r['wall_s']:>7.0f}{r['checks']:>7}"
            f"{r['checks'] / r['wall_s']:>7.1f}{r['cpu_pct']:>7.1f}{r['peak_rss_mb']:>8.1f}"
            f"{r['rss_end_mb']:>7.1f}{r['max_per_s']:>6}{r['mean_per_s']:>7.1f}"
            f"{r['min_per_s']:>6}{gap:>7}{r['load_s']:>7.2f}  {verdict(r)}"
        )
    by = {r["design"]: r for r in results}
    if "a" in by:
        for other in ("b", "ar"):
            if other in by:
                print(
                    f"CPU ratio {DESIGNS[other]} / {DESIGNS['a']}: "
                    f"{by[other]['cpu_pct'] / by['a']['cpu_pct']:.2f}x"
                )

    print()
    kinds = ["event loop", "db workers", "getaddrinfo", "other"]
    print(
        f"{'CPU % of one core':<20}{'kernel':>7}"
        + "".join(f"{k:>12}" for k in kinds)
        + f"{'RSS idle':>9}{'loaded':>7}{'1st 5s max/s':>13}{'max/100ms':>10}{'skipped':>8}"
    )
    for r in results:
        cells = "".join(f"{100 * r['threads'].get(k, 0.0) / r['wall_s']:>12.1f}" for k in kinds)
        print(
            f"{DESIGNS[r['design']]:<20}{r['sys_pct']:>7.1f}{cells}{r['rss_start_mb']:>9.1f}"
            f"{r['rss_loaded_mb']:>7.1f}{r['warm_up_max_per_s']:>13}{r['max_per_100ms']:>10}"
            f"{r['skipped']:>8}"
        )
    print()
    print(
        "Each design runs in a subprocess of its own, so RSS is that design's alone: Python,\n"
        "the libraries and the plan of every endpoint. MB are 10^6 bytes. 'RSS idle' is after\n"
        "imports and the migration check, 'loaded' after the endpoints are planned, 'peak' the\n"
        "high-water mark (VmHWM). 'kernel' is the system-time part of CPU %, the thread\n"
        "columns split CPU % by thread ('getaddrinfo': the loop's default executor).\n"
        f"max/s, mean/s, min/s: checks per second of their result's time after the first\n"
        f"{WARM_UP} s (a loopback connect takes well under 1 ms, so that is the second they\n"
        f"started); '1st 5s max/s' is the busiest of the first {WARM_UP} s, where the first tick\n"
        "also starts what fell due while the endpoints loaded; 'max/100ms' the busiest tenth of\n"
        "a second of the run (A starts a tick's checks at once). 'gap s' is the mean time between\n"
        "two checks of one endpoint, the effective interval. 'skipped' counts runs APScheduler\n"
        "missed or refused (max_instances). The TCP server runs in the parent, not counted."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--quick", action="store_true", help="20 s per design")
    parser.add_argument("--design", default="a,b,ar", help="comma-separated: a, b, ar")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop (calcifer run uses asyncio)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the event-loop thread of each design (stderr)",
    )
    parser.add_argument(
        "--series", action="store_true", help="print the checks of every second of each design"
    )
    parser.add_argument("--child", choices=sorted(DESIGNS), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.seconds = 20.0
    if args.child:
        child_main(args)
        return

    designs = [d.strip() for d in args.design.split(",") if d.strip()]
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown:
        parser.error(f"unknown design {', '.join(unknown)}; expected a, b or ar")
    port = start_server()
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as scratch:
        template = Path(scratch) / "template.db"
        took = build_database(template, args.endpoints, port)
        print(
            f"set-up: {args.endpoints} endpoints built and inserted in {took:.1f} s; "
            f"target tcp://127.0.0.1:{port}",
            flush=True,
        )
        results = []
        for design in designs:
            db = Path(scratch) / f"{design}.db"
            copy_database(template, db, restart=design == "ar")
            gc.collect()
            print(f"running design {DESIGNS[design]} for {args.seconds:g} s ...", flush=True)
            results.append(run_child(design, db, args))
            with contextlib.suppress(OSError):
                for suffix in ("", "-wal", "-shm"):
                    os.remove(f"{db}{suffix}")
    print_table(results, args)
    if args.series:
        for r in results:
            print(f"\nchecks per second, {DESIGNS[r['design']]}:")
            series = r["series"]
            for i in range(0, len(series), 20):
                print(f"  {i + 1:>4}-{min(i + 20, len(series)):<4}", *series[i : i + 20])


if __name__ == "__main__":
    main()
