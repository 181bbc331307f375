"""What the chat benchmarks (bench_slack.py, bench_discord.py) share.

Latency samples and their p50/p95/max columns, a run of posts (messages per
second, CPU per 1,000) and where the outbox spends its time, the typical alert
both post, the outbox posting loop, a fake chat service in a child process,
progress on stderr, and scratch SQLite files. The benchmarks import it as
``benchmarks.common`` once the repository root is on ``sys.path``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from adapters import chat_adapters
from calcifer_bot.config import Settings
from calcifer_bot.core import Core
from calcifer_bot.outbox import Deliver, deliver_pending, enqueue
from calcifer_bot.reply import Button, Field, Reply, Status

T = TypeVar("T")

ANSWER_TIMEOUT_S = 10.0
MS_HEAD = f"{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"  # the columns of ms()
RUN_HEAD = f"{'':<44}{'sent':>6}{'msg/s':>9}{'CPU s/1000':>11}{MS_HEAD}"  # of Run.row()


# -- latencies ------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


def ms(samples: list[float]) -> str:
    if not samples:
        return f"{'-':>9}{'-':>9}{'-':>9}"
    p50, p95, top = percentile(samples, 0.5), percentile(samples, 0.95), max(samples)
    return f"{p50 * 1e3:>9.2f}{p95 * 1e3:>9.2f}{top * 1e3:>9.2f}"


def ratio(ours: list[float], base: list[float]) -> str:
    if not ours or not base:
        return ""
    p50 = percentile(ours, 0.5) / percentile(base, 0.5)
    p95 = percentile(ours, 0.95) / percentile(base, 0.95)
    return f"{p50:>9.1f}x{p95:>8.1f}x"


def latency_row(label: str, samples: list[float], width: int) -> str:
    """``label``, the count and ms(samples), under a head of ``width``, n and MS_HEAD."""
    return f"{label:<{width}}{len(samples):>5}{ms(samples)}"


def at_least(samples: list[float], seconds: float) -> int:
    return sum(1 for s in samples if s >= seconds)


def timed(fn: Callable[..., Awaitable[Any]], into: list[float]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fn(*a, **kw)
        finally:
            into.append(time.perf_counter() - t0)

    return wrapper


async def wait_until(done: Callable[[], bool]) -> None:
    """Up to 5 s for ``done()``, e.g. a closed client's socket to leave the fake."""
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)


class Progress:
    """Where a long phase is, on stderr: a counter in place on a terminal, else a line."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.tty = sys.stderr.isatty()
        self.shown = time.perf_counter()
        if self.tty:
            self._show()
        else:
            print(f"  … {label} ({total})", file=sys.stderr, flush=True)

    def _show(self) -> None:
        print(f"\r\033[K  … {self.label}: {self.done}/{self.total}", end="", file=sys.stderr)
        sys.stderr.flush()

    def step(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if self.tty and now - self.shown >= 0.2:
            self.shown = now
            self._show()

    def close(self) -> None:
        if self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


# -- runs of posts --------------------------------------------------------------


@dataclass
class Run:
    sent: int
    wall: float
    cpu: float
    per_message: list[float]

    @classmethod
    def empty(cls) -> Run:
        return cls(0, 0, 0, [])

    def add(self, other: Run) -> None:
        self.sent += other.sent
        self.wall += other.wall
        self.cpu += other.cpu
        self.per_message += other.per_message

    @property
    def rate(self) -> float:
        return self.sent / self.wall if self.wall else 0.0

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu / self.sent * 1000 if self.sent else 0.0

    def row(self, label: str, base: Run | None = None) -> str:
        """A line under RUN_HEAD; with ``base``, two more columns: its time and CPU ÷ base's."""
        line = f"{label:<44}{self.sent:>6}{self.rate:>9.0f}{self.cpu_per_1000:>11.2f}"
        line += ms(self.per_message)
        if base is not None and self.rate and base.cpu_per_1000:
            line += f"{base.rate / self.rate:>11.1f}x{self.cpu_per_1000 / base.cpu_per_1000:>7.1f}x"
        return line


async def sequential(calls: Iterable[T], send: Callable[[T], Awaitable[Any]]) -> Run:
    """``send(call)`` for each call, one after another: wall, CPU and each one's time."""
    per: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for call in calls:
        t0 = time.perf_counter()
        await send(call)
        per.append(time.perf_counter() - t0)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Run(len(per), wall, cpu, per)


@dataclass
class Breakdown:
    claims: list[float] = field(default_factory=list)
    delivers: list[float] = field(default_factory=list)
    marks: list[float] = field(default_factory=list)

    def add(self, other: Breakdown) -> None:
        self.claims += other.claims
        self.delivers += other.delivers
        self.marks += other.marks


def print_breakdown(
    title: str, parts: Breakdown, deliverer: str, *others: tuple[str, list[float]]
) -> None:
    """Where outbox_posts' time went: claiming, the ``deliverer`` (its label), marking
    sent; ``others`` (label, samples) for comparison before the last."""
    rows = (
        ("  outbox.claim (one transaction per pass of 50)", parts.claims),
        (f"  {deliverer}", parts.delivers),
        *others,
        ("  outbox.sent (one transaction per message)", parts.marks),
    )
    print(f"{title:<50}{MS_HEAD}")
    for label, samples in rows:
        print(f"{label:<50}{ms(samples)}")


def alert(i: int, fields: Callable[[str], tuple[Field, ...]]) -> Reply:
    """Shaped like calcifer_bot.alerts.render's "is down" message; ``fields(name)`` its fields."""
    name = f"api-{i:04d}"
    return Reply(
        title=f"{name} is down",
        text=f"{name} is down since 2026-12-03 12:00 UTC (2 min ago).",
        status=Status.ERROR,
        fields=fields(name),
        footer=f"Incident #{i}",
        buttons=(
            Button("Acknowledge", f"ack {i}", "primary"),
            Button("Mute 1 h", f"mute {name} 1h"),
            Button("Re-check now", f"check {name}"),
        ),
    )


async def enqueue_alerts(
    core: Core, m: int, tag: str, destination: Callable[[int], str], reply: Callable[[int], Reply]
) -> None:
    """``m`` alerts in the outbox in one transaction, ``reply(i)`` for ``destination(i)``."""
    now = core.clock()

    def add(session: Any) -> int:
        return sum(
            enqueue(
                session,
                key=f"bench:{tag}:{i}",
                destination=destination(i),
                kind="alert",
                reply=reply(i),
                now=now,
                ref=f"alert:{tag}:{i}",
            )
            for i in range(m)
        )

    assert await core.db.write(add) == m


async def outbox_posts(
    core: Core,
    deliverer: Deliver,
    m: int,
    tag: str,
    *,
    platform: str,
    channel: Callable[[int], object],
    reply: Callable[[int], Reply],
) -> tuple[Run, Breakdown, int]:
    """``reply(i)`` for ``platform:channel(i)``, i < m, enqueued in the outbox, then
    deliver_pending through ``deliverer`` until all are sent: the run (a message's
    time: its delivery and marking it sent), where the time went, and the passes."""
    await enqueue_alerts(core, m, tag, lambda i: f"{platform}:{channel(i)}", reply)
    parts = Breakdown()
    outbox = core.outbox
    outbox.claim = timed(outbox.claim, parts.claims)  # type: ignore[method-assign,assignment]
    outbox.sent = timed(outbox.sent, parts.marks)  # type: ignore[method-assign,assignment]
    deliver: Deliver = timed(deliverer, parts.delivers)
    sent = passes = 0
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while sent < m:
            done = await deliver_pending(outbox, deliver, (platform,))
            passes += 1
            if done == 0:
                break
            sent += done
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        del outbox.claim, outbox.sent  # back to the class's methods
    per = [d + s for d, s in zip(parts.delivers, parts.marks, strict=False)]
    return Run(sent, wall, cpu, per), parts, passes


# -- set-up ---------------------------------------------------------------------


def arguments(
    doc: str, *own: tuple[str, int, str], alerts_per: str, warmup: str
) -> argparse.Namespace:
    """The command line: the benchmark's ``own`` options (name, default, help) first,
    then those of the alert delivery both have, and the hidden --serve-fake."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for name, default, text in own:
        parser.add_argument(name, type=int, default=default, help=text)
    parser.add_argument("--alerts", type=int, default=500, help=f"alert posts per {alerts_per}")
    parser.add_argument("--channels", type=int, default=5, help="channels the alerts go to")
    parser.add_argument("--rounds", type=int, default=3, help="alert delivery rounds")
    parser.add_argument("--warmup", type=int, default=10, help=f"uncounted {warmup}/posts first")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def the_adapter(core: Core, settings: Settings, kind: type[T]) -> T:
    """The one chat adapter ``calcifer run`` would build from ``settings``."""
    [adapter] = chat_adapters(core, settings)
    assert isinstance(adapter, kind)
    return adapter


@contextlib.contextmanager
def scratch_databases() -> Iterator[Callable[[str], str]]:
    """``db(name)``: the URL of a SQLite file in a temporary directory (in $TMPDIR)."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as scratch:
        yield lambda name: f"sqlite:///{scratch}/{name}.db"


@contextlib.asynccontextmanager
async def fake_child(
    script: str, *args: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, bytes]]:
    """``script --serve-fake *args`` in a child process (its CPU is not ours), and the
    first line it prints. Closing its stdin tells it to stop; it has 10 s to."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        "--serve-fake",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        yield proc, await asyncio.wait_for(proc.stdout.readline(), 30)
    finally:
        if not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def until_stdin_closes() -> None:
    """In a --serve-fake child: the parent is done with the fake."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
