"""What do the outbox and the webhook provider cost, and does a slow destination hold back the rest?

Everything runs against a JSON receiver on 127.0.0.1 (aiohttp) in a child
process, so that its CPU does not compete inside the measured event loop, with
the real generic webhook provider (``integrations/notify/webhook.py``) going
through the shared HTTP session (``calcifer_bot.http``). The core is built as
``calcifer run`` builds it: a ``[notifications]`` TOML file, ``load_settings``,
``open_core`` (a migrated database, ``integrations.configure``), the real clock
(``calcifer_bot.core.utcnow``), and messages are delivered as it delivers them:
``run_deliveries`` as a task, with its own ``core.outbox_wake()``, ``idle=2.0``,
stopped through ``stop``. Each figure stands beside a baseline measured in the
same process:

1. Delivery throughput. ``--messages`` alerts (the benchmarks' typical one)
   already in the outbox for ``--destinations`` webhook destinations with
   ``rate = "off"``, round-robin, delivered with ``NotificationsIntegration.deliver``
   twice: by ``run_deliveries`` until all are sent (then it is stopped), and by
   ``deliver_pending`` passes (one claim, the destinations side by side, the
   pass awaited) until none are left, as the tests deliver. Baseline: as many
   POSTs of the same JSON bodies and headers (recorded from the provider's own
   ``send``) through ``calcifer_bot.http.session()`` with the same timeout,
   one after another per destination, the destinations side by side, no
   outbox. Messages per second, CPU seconds per 1,000 (this process, database
   threads included), and where each outbox row's time goes: ``outbox.claim``
   and ``outbox.sent`` against the provider's ``send`` (the methods are wrapped).
   Messages are enqueued as ``benchmarks.common.outbox_posts`` does: without
   routing labels, so the bodies carry ``"labels": {}``. ``--rounds`` rounds,
   the three rows interleaved, are added up. The receiver checks that every
   Idempotency-Key arrived exactly once.
2. Fan-out at enqueue. ``--fanout`` alerts published with ``publish`` for
   the chat channel ``slack:C1`` plus 0, 3 or 10 matching routes (ten routes
   ``match = { tag = "tN" }`` to ten destinations; every message has ten
   tags, of which 0, 3 or 10 match), one transaction per 100 messages as the
   alert engine writes a batch, in µs per message. Baseline: plain ``enqueue``
   of the same message to one destination. Routing alone
   (``Routes.destinations``) is timed too. ``--rounds`` rounds, the order of
   the rows reversed every other round, are added up.
3. Isolation. ``--isolation`` messages for each of two fast destinations,
   interleaved with as many for one whose receiver answers every request
   after ``--slow-ms``, then ``run_deliveries`` until the fast ones' messages
   have all been delivered (and marked sent), when it is stopped: that time,
   beside the same with the slow destination absent, and how many of the slow
   one's messages had been sent by then. A fully isolated outbox makes the
   ratio about 1; one that sends everything in order, about
   ``isolation × slow-ms`` seconds.

SQLite (a file in a temporary directory) is always measured; ``--postgres URL``
measures PostgreSQL too, each section in a schema of its own, dropped afterwards.

    python benchmarks/bench_notify.py [--messages 2000] [--destinations 3]
        [--fanout 1000] [--isolation 100] [--slow-ms 200] [--rounds 1]
        [--warmup 20] [--quick] [--postgres URL]

``--quick`` (a few seconds) is ``--messages 200 --fanout 200 --isolation 10
--warmup 5``; there each fast destination's messages fit in one claim.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

import integrations
from calcifer_bot import http
from calcifer_bot.config import load_settings
from calcifer_bot.core import Core
from calcifer_bot.outbox import Deliver, Delivery, enqueue, publish, run_deliveries
from calcifer_bot.reply import Field, MessageRef, Reply
from calcifer_bot.routing import NOTIFY, Labels
from calcifer_bot.runtime import open_core
from integrations.notifications import NotificationsIntegration
from integrations.notify.base import Message, Provider

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for benchmarks/ and tests/
from benchmarks import common
from benchmarks.common import (
    MS_HEAD,
    RUN_HEAD,
    Breakdown,
    Progress,
    Run,
    enqueue_alerts,
    ms,
    outbox_posts,
    percentile,
    scratch_databases,
    sequential,
    timed,
)
from tests.conftest import postgres_schema

# name: (default, --quick)
DEFAULTS = {
    "messages": (2000, 200),
    "fanout": (1000, 200),
    "isolation": (100, 10),
    "rounds": (1, 1),
    "warmup": (20, 5),
}
CHAT = "slack:C1"  # the chat channel every published alert also goes to
FAN_OUT = (0, 3, 10)  # matching routes per message in section 2
ROUTES = 10  # routes (and destinations) configured in section 2
PER_TRANSACTION = 100
SLOW = "slow"
FAST = ("fast-1", "fast-2")

# A database URL for a section, by name: a SQLite file, or a throwaway PostgreSQL schema.
Where = Callable[[str], contextlib.AbstractContextManager[str]]


# -- the receiver (a child process) ---------------------------------------------


async def serve_receiver(slow_ms: int) -> None:
    """The --serve-fake child: a JSON receiver on 127.0.0.1 until stdin closes.

    ``POST /fast/NAME`` answers at once, ``POST /slow/NAME`` after ``slow_ms``;
    both with ``{"id": …}`` as a receiver of our own might. ``GET /stats`` says
    what arrived since the last ``/stats`` (POSTs by name, keys that came more
    than once, the receiver's CPU seconds) and starts counting afresh.
    """
    posts: Counter[str] = Counter()
    keys: Counter[str] = Counter()
    cpu = [time.process_time()]

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        if request.match_info["speed"] == "slow":
            await asyncio.sleep(slow_ms / 1000)
        name = request.match_info["name"]
        posts[name] += 1
        keys[request.headers.get("Idempotency-Key", "")] += 1
        return web.json_response({"id": f"{name}-{posts[name]}"})

    async def stats(request: web.Request) -> web.Response:
        now = time.process_time()
        answer = {
            "posts": dict(posts),
            "repeated": sum(1 for count in keys.values() if count > 1),
            "cpu": now - cpu[0],
        }
        posts.clear()
        keys.clear()
        cpu[0] = now
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/{speed:fast|slow}/{name}", hook)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    try:
        port = runner.addresses[0][1]
        print(f"http://127.0.0.1:{port}", flush=True)
        await common.until_stdin_closes()
    finally:
        await runner.cleanup()


@dataclass
class Receiver:
    url: str

    async def stats(self) -> dict[str, Any]:
        """What the receiver got since the last call (and it starts counting afresh)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/stats") as response,
        ):
            response.raise_for_status()
            return cast(dict[str, Any], await response.json())

    async def expect(self, posts: int, what: str) -> dict[str, Any]:
        """The stats, with a warning unless exactly ``posts`` arrived, each key once."""
        got = await self.stats()
        total = sum(got["posts"].values())
        if total != posts or got["repeated"]:
            print(
                f"  !! {what}: the receiver got {total} POSTs (expected {posts}), "
                f"{got['repeated']} keys more than once"
            )
        return got


@contextlib.asynccontextmanager
async def receiver_in_subprocess(slow_ms: int) -> AsyncIterator[Receiver]:
    async with common.fake_child(__file__, "--slow-ms", str(slow_ms)) as (_, line):
        url = line.decode().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the receiver did not start: {line!r}")
        yield Receiver(url)


# -- set-up -----------------------------------------------------------------------


def destination(name: str, url: str) -> str:
    return f'[notifications.destinations.{name}]\ntype = "webhook"\nurl = "{url}"\nrate = "off"\n'


@contextlib.asynccontextmanager
async def notify_core(
    database_url: str, toml: str, configs: Path, name: str
) -> AsyncIterator[tuple[Core, NotificationsIntegration]]:
    """A core on a migrated database with this ``[notifications]`` configuration."""
    path = configs / f"{name}.toml"
    path.write_text(toml)
    settings = load_settings(path, environ={"CALCIFER_DATABASE_URL": database_url})
    async with open_core(settings) as core:
        notifier = cast(NotificationsIntegration, integrations.get("notifications"))
        yield core, notifier


def alert_fields(name: str) -> tuple[Field, ...]:
    return (
        Field("Target", f"https://{name}.example.org/health"),
        Field("Error", "HTTP 503 Service Unavailable"),
        Field("Service", "checkout"),
    )


def alert(i: int) -> Reply:
    """The benchmarks' typical alert, with the fields of this one."""
    return common.alert(i, alert_fields)


def notifier_deliverer(core: Core, notifier: NotificationsIntegration) -> Deliver:
    """The notification worker's deliverer, as ``calcifer run`` passes it."""
    return lambda delivery: notifier.deliver(delivery, core.clock())


def counted(deliver: Deliver, progress: Progress) -> Deliver:
    async def wrapper(delivery: Delivery) -> MessageRef | None:
        try:
            return await deliver(delivery)
        finally:
            progress.step()

    return wrapper


@dataclass
class Looped:
    """What one run of ``run_deliveries`` did, until the messages it was waiting for were sent."""

    took: float | None = None  # wall seconds until then; None: not within the limit
    cpu: float = 0.0  # this process's CPU seconds until then
    stopping: float = 0.0  # from setting ``stop`` until run_deliveries returned
    parts: Breakdown = field(default_factory=Breakdown)
    per_message: list[float] = field(default_factory=list)  # its deliver() to its sent()
    sent: list[Delivery] = field(default_factory=list)  # in the order marked sent, until then
    wanted: int = 0  # of ``sent``, the ones waited for

    def run(self) -> Run:
        return Run(self.wanted, self.took or 0.0, self.cpu, self.per_message)


async def looped(
    core: Core,
    deliver: Deliver,
    wake: asyncio.Event,
    *,
    count: int,
    wanted: Callable[[Delivery], bool] = lambda delivery: True,
    limit: float,
    progress: Progress | None = None,
) -> Looped:
    """``run_deliveries`` as ``calcifer run`` runs it, as a task, until ``count`` messages
    for which ``wanted`` holds have been marked sent; then ``stop`` is set (as on a
    shutdown) and the task awaited. ``outbox.claim``, ``deliver`` and ``outbox.sent``
    are timed."""
    outbox, stop, done = core.outbox, asyncio.Event(), asyncio.Event()
    out = Looped()
    starts: dict[int, float] = {}
    sent = timed(outbox.sent, out.parts.marks)
    outbox.claim = timed(outbox.claim, out.parts.claims)  # type: ignore[method-assign,assignment]

    async def send(delivery: Delivery) -> MessageRef | None:
        starts[delivery.id] = time.perf_counter()
        return cast(MessageRef | None, await deliver(delivery))

    async def mark(delivery: Delivery, posted: MessageRef | None = None) -> None:
        await sent(delivery, posted)
        if done.is_set():
            return
        out.per_message.append(time.perf_counter() - starts[delivery.id])
        out.sent.append(delivery)
        if not wanted(delivery):
            return
        out.wanted += 1
        if progress is not None:
            progress.step()
        if out.wanted == count:
            out.took, out.cpu = time.perf_counter() - t0, time.process_time() - cpu0
            done.set()
            stop.set()

    outbox.sent = mark  # type: ignore[method-assign]
    try:
        cpu0, t0 = time.process_time(), time.perf_counter()
        task = asyncio.create_task(
            run_deliveries(
                outbox, timed(send, out.parts.delivers), (NOTIFY,), wake=wake, stop=stop, idle=2.0
            )
        )
        waiting = asyncio.create_task(done.wait())
        await asyncio.wait((task, waiting), timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        stop.set()
        stopped = t0 + out.took if out.took is not None else time.perf_counter()
        await asyncio.wait_for(task, limit)
        out.stopping = time.perf_counter() - stopped
    finally:
        del outbox.claim, outbox.sent  # back to the class's methods
    return out


# -- 1. delivery throughput -------------------------------------------------------

Call = tuple[str, str, dict[str, Any]]  # method, URL, http.request's keywords


async def recorded_calls(
    providers: dict[str, Provider], names: list[str], m: int, tag: str
) -> list[list[Call]]:
    """What each destination's provider hands ``http.request`` for outbox_posts' messages
    (``send`` against a recorder: nothing is sent), grouped by destination, in order."""
    by_url: dict[str, list[Call]] = {}
    saved = http.request

    async def record(method: str, url: str, **kw: Any) -> http.Response:
        by_url.setdefault(url, []).append((method, url, kw))
        return http.Response(200, CIMultiDictProxy(CIMultiDict()), b"{}", url)

    http.request = record
    try:
        for i in range(m):
            message = Message(
                key=f"bench:{tag}:{i}",  # as outbox_posts enqueues them
                kind="alert",
                op="post",
                reply=alert(i),
                labels={},
            )
            await providers[names[i % len(names)]].send(message)
    finally:
        http.request = saved
    return [calls for calls in by_url.values()]


async def bare_post(call: Call) -> None:
    """The recorded request through the shared session, body read, no chokepoint."""
    method, url, kw = call
    async with http.session().request(
        method,
        url,
        data=kw["data"],
        headers=kw["headers"],
        timeout=aiohttp.ClientTimeout(total=kw["timeout_s"]),
    ) as response:
        await response.read()
        if response.status >= 400:
            raise RuntimeError(f"the receiver answered HTTP {response.status}")


async def side_by_side(queues: list[list[Call]], progress: Progress | None = None) -> Run:
    """Each queue in order, the queues side by side: wall, CPU and each POST's time."""

    async def send(call: Call) -> None:
        try:
            await bare_post(call)
        finally:
            if progress is not None:
                progress.step()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    runs = await asyncio.gather(*(sequential(q, send) for q in queues))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    per = [s for run in runs for s in run.per_message]
    return Run(len(per), wall, cpu, per)


@contextlib.contextmanager
def timed_sends(providers: dict[str, Provider], into: list[float]) -> Iterator[None]:
    for provider in providers.values():
        provider.send = timed(provider.send, into)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        for provider in providers.values():
            del provider.send  # back to the class's method


async def enqueue_posts(core: Core, m: int, tag: str, names: list[str]) -> None:
    """The messages outbox_posts would enqueue for ``tag``, round-robin over ``names``."""
    await enqueue_alerts(core, m, tag, lambda i: f"{NOTIFY}:{names[i % len(names)]}", alert)


@dataclass
class Row:
    """An outbox row of section 1, added up over the rounds."""

    run: Run = field(default_factory=Run.empty)
    parts: Breakdown = field(default_factory=Breakdown)
    sends: list[float] = field(default_factory=list)  # Webhook.send
    receiver_cpu: float = 0.0
    overlaps: bool = False  # claims while other destinations send

    def add(self, run: Run, parts: Breakdown) -> None:
        self.run.add(run)
        self.parts.add(parts)


def time_split(rows: dict[str, Row], bare: Run) -> None:
    """Where each outbox row's time went: calls, p50 and the sum, side by side."""
    head = "".join(f"{label:>34}" for label in rows)
    print(f"\n  {'where the time goes':<36}{head}")
    cols = "".join(f"{'calls':>8}{'p50 ms':>8}{'max ms':>8}{'sum s':>10}" for _ in rows)
    print(f"  {'':<36}{cols}")

    def line(label: str, pick: Callable[[Row], list[float]]) -> None:
        cells = ""
        for row in rows.values():
            samples = pick(row)
            p50 = percentile(samples, 0.5) * 1e3 if samples else 0.0
            top = max(samples, default=0.0) * 1e3
            cells += f"{len(samples):>8}{p50:>8.2f}{top:>8.1f}{sum(samples):>10.2f}"
        print(f"  {label:<36}{cells}")

    line("outbox.claim", lambda r: r.parts.claims)
    line("notifier.deliver", lambda r: r.parts.delivers)
    line("  of which Webhook.send", lambda r: r.sends)
    line("outbox.sent", lambda r: r.parts.marks)
    if bare.per_message:
        print(
            f"  {'the bare POST, for comparison':<36}{bare.sent:>8}"
            f"{percentile(bare.per_message, 0.5) * 1e3:>8.2f}{max(bare.per_message) * 1e3:>8.1f}"
            f"{sum(bare.per_message):>10.2f}"
        )
    for label, row in rows.items():
        claim, mark = sum(row.parts.claims), sum(row.parts.marks)
        whole, send = sum(row.parts.delivers), sum(row.sends)
        busy = claim + mark + whole
        if not busy or not row.run.wall:
            continue
        when = "beside other destinations' sends" if row.overlaps else "when nothing is sent"
        per_claim = row.run.sent / len(row.parts.claims) if row.parts.claims else 0.0
        slower = (
            percentile(row.sends, 0.5) / percentile(bare.per_message, 0.5)
            if row.sends and bare.per_message
            else 0.0
        )
        print(
            f"  {label}: {per_claim:.1f} messages per claim; of the time summed over the "
            f"destinations'\n    tasks, claim {claim / busy:.0%} ({claim / row.run.wall:.0%} of "
            f"the wall time, {when}), sent {mark / busy:.0%},\n    Webhook.send "
            f"{send / busy:.0%}, the rest "
            f"of deliver {(whole - send) / busy:.0%};\n    Webhook.send ÷ the bare POST (p50): "
            f"{slower:.1f}x; the receiver's CPU {row.receiver_cpu:.2f} s"
        )


async def bench_throughput(
    where: Where, configs: Path, receiver: Receiver, args: argparse.Namespace
) -> None:
    m, k, rounds = args.messages, args.destinations, args.rounds
    print(
        f"\n1. Delivery throughput: {m} alerts in the outbox for {k} webhook destinations "
        f'(rate = "off"),\n   delivered by deliver_pending passes until none are left, and '
        "by run_deliveries (as\n   `calcifer run` delivers) until all are sent; baseline: the "
        "same POSTs (bodies and\n   headers recorded from Webhook.send) through http.session(), "
        "in order per destination,\n   destinations side by side. "
        f"Rounds: {rounds}" + (", the rows interleaved and added up." if rounds > 1 else "."),
        flush=True,
    )
    names = [f"hook-{j}" for j in range(k)]
    toml = "".join(destination(n, f"{receiver.url}/fast/{n}") for n in names)
    limit = 60 + m * 0.05
    with where("throughput") as url:
        async with notify_core(url, toml, configs, "throughput") as (core, notifier):
            providers = {n: cast(Provider, notifier.destinations[n].provider) for n in names}
            deliver = notifier_deliverer(core, notifier)
            wake = core.outbox_wake()
            posts = functools.partial(
                outbox_posts, core, platform=NOTIFY, channel=lambda i: names[i % k], reply=alert
            )

            async def loop(tag: str, progress: Progress | None, count: int) -> Looped:
                await enqueue_posts(core, count, tag, names)
                return await looped(
                    core, deliver, wake, count=count, limit=limit, progress=progress
                )

            w = args.warmup
            await side_by_side(await recorded_calls(providers, names, w, "warmup"))
            await posts(deliver, w, "warmup")
            await loop("warmup-loop", None, w)
            await receiver.stats()
            base, base_cpu, passes = Run.empty(), 0.0, 0
            rows = {"deliver_pending passes": Row(), "run_deliveries": Row(overlaps=True)}
            passing, running = rows.values()
            progress = Progress("delivery, 3 rows × rounds", 3 * m * rounds)
            for r in range(rounds):
                calls = await recorded_calls(providers, names, m, f"r{r}")
                base.add(await side_by_side(calls, progress))
                base_cpu += (await receiver.expect(m, "baseline"))["cpu"]
                with timed_sends(providers, passing.sends):
                    run, split, n = await posts(counted(deliver, progress), m, f"r{r}")
                passing.add(run, split)
                passes += n
                passing.receiver_cpu += (await receiver.expect(m, "deliver_pending"))["cpu"]
                with timed_sends(providers, running.sends):
                    got = await loop(f"r{r}-loop", progress, m)
                if got.took is None:
                    print(f"  !! run_deliveries sent {got.wanted} of {m} in {limit:.0f} s")
                running.add(got.run(), got.parts)
                running.receiver_cpu += (await receiver.expect(m, "run_deliveries"))["cpu"]
            progress.close()
            pending = await core.outbox.pending((NOTIFY,))

    print(f"\n{RUN_HEAD}{'÷bare time':>12}{'CPU':>8}")
    print(base.row("bare POSTs, http.session(), no outbox"))
    print(passing.run.row("deliver_pending passes + notifier.deliver", base))
    print(running.run.row("run_deliveries + notifier.deliver", base))
    time_split(rows, base)
    print(
        f"  {passes} deliver_pending passes, {pending} messages left pending; the receiver's "
        f"CPU for the bare POSTs: {base_cpu:.2f} s"
    )


# -- 2. fan-out at enqueue --------------------------------------------------------


def fanout_toml() -> str:
    dests = "".join(
        destination(f"dest-{j}", f"http://127.0.0.1:9/never/{j}") for j in range(ROUTES)
    )
    routes = "".join(
        f'[[notifications.routes]]\nmatch = {{ tag = "t{j}" }}\nto = ["dest-{j}"]\n'
        for j in range(ROUTES)
    )
    return dests + routes


def fanout_labels(i: int, matching: int) -> Labels:
    """Ten tags, ``matching`` of which are routed: the same routing work for every row."""
    tags = tuple(f"t{j}" for j in range(matching)) + tuple(
        f"x{j}" for j in range(ROUTES - matching)
    )
    return Labels(
        "alert",
        endpoint=f"api-{i:04d}",
        service="checkout",
        group="web",
        tags=tags,
        severity="critical",
    )


@dataclass
class Enqueued:
    wall: float = 0.0
    cpu: float = 0.0
    messages: int = 0
    transactions: list[float] = field(default_factory=list)


async def bench_fanout(where: Where, configs: Path, args: argparse.Namespace) -> None:
    m, rounds = args.fanout, args.rounds
    print(
        f"\n2. Fan-out at enqueue: {m} alerts, one transaction per {PER_TRANSACTION}, published "
        f"for the chat\n   channel {CHAT} plus 0, 3 or 10 matching routes (of {ROUTES}; ten tags "
        f"each), beside plain\n   enqueue() to one destination. Rounds: {rounds}"
        + (", the order reversed every other round." if rounds > 1 else "."),
        flush=True,
    )
    replies = [alert(i) for i in range(m)]
    labels = {k: [fanout_labels(i, k) for i in range(m)] for k in FAN_OUT}
    rows: list[int | None] = [None, *FAN_OUT]  # None: plain enqueue
    with where("fanout") as url:
        async with notify_core(url, fanout_toml(), configs, "fanout") as (core, _):
            routes = core.routes
            assert [len(routes.destinations(labels[k][0])) for k in FAN_OUT] == list(FAN_OUT)

            def add(session: Any, k: int | None, tag: str, lo: int, hi: int) -> None:
                now = core.clock()
                for i in range(lo, hi):
                    key, ref = f"fan:{tag}:{i}", f"alert:{tag}:{i}"
                    if k is None:
                        enqueue(
                            session,
                            key=key,
                            destination=CHAT,
                            kind="alert",
                            reply=replies[i],
                            now=now,
                            ref=ref,
                            labels=labels[0][i],
                        )
                    else:
                        publish(
                            session,
                            routes,
                            labels[k][i],
                            channel=CHAT,
                            key=key,
                            reply=replies[i],
                            now=now,
                            ref=ref,
                        )

            async def one(k: int | None, tag: str, n: int, into: Enqueued | None) -> None:
                for lo in range(0, n, PER_TRANSACTION):
                    hi = min(n, lo + PER_TRANSACTION)
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    await core.db.write(functools.partial(add, k=k, tag=tag, lo=lo, hi=hi))
                    took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                    if into is not None:
                        into.wall += took
                        into.cpu += cpu
                        into.messages += hi - lo
                        into.transactions.append(took)
                        progress.step()

            warm = max(args.warmup, PER_TRANSACTION)
            for k in rows:
                await one(k, f"warmup-{k}", min(warm, m), None)
            results = {k: Enqueued() for k in rows}
            per_round = len(rows) * -(-m // PER_TRANSACTION)
            progress = Progress("enqueue, 4 rows × rounds (transactions)", per_round * rounds)
            for r in range(rounds):
                for k in rows if r % 2 == 0 else rows[::-1]:
                    await one(k, f"r{r}-{k}", m, results[k])
            progress.close()
            routing: dict[int, float] = {}
            for k in FAN_OUT:
                best = float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    for one_labels in labels[k]:
                        routes.destinations(one_labels)
                    best = min(best, time.perf_counter() - t0)
                routing[k] = best / m * 1e6
            total = await core.outbox.pending(("",))
    expected = sum((1 if k is None else 1 + k) * m * rounds for k in rows)
    expected += sum((1 if k is None else 1 + k) * min(warm, m) for k in rows)
    if total != expected:
        print(f"  !! {total} rows in the outbox, expected {expected}")

    print(f"\n  (the last three columns: one transaction of {PER_TRANSACTION} messages)")
    print(f"{'':<40}{'rows':>5}{'µs/msg':>9}{'µs/row':>8}{'CPU µs':>8}{'÷enq':>7}{MS_HEAD}")
    base = results[None]
    base_us = base.wall / base.messages * 1e6
    for k in rows:
        got = results[k]
        per = 1 if k is None else 1 + k
        us = got.wall / got.messages * 1e6
        cpu = got.cpu / got.messages * 1e6
        label = "enqueue(), one destination" if k is None else f"publish(), {k} matching routes"
        line = f"{label:<40}{per:>5}{us:>9.0f}{us / per:>8.0f}{cpu:>8.0f}{us / base_us:>6.1f}x"
        print(f"{line}{ms(got.transactions)}")
    print(
        "  routing alone (Routes.destinations, best of 5): "
        + ", ".join(f"{k} matching {routing[k]:.1f} µs" for k in FAN_OUT)
        + " per message"
    )


# -- 3. isolation -----------------------------------------------------------------


async def race(
    core: Core,
    deliver: Deliver,
    wake: asyncio.Event,
    names: tuple[str, ...],
    m: int,
    tag: str,
    limit: float,
) -> Looped:
    """``m`` messages for each of ``names``, interleaved, then run_deliveries until the
    fast ones' are all sent (then it is stopped, as on a shutdown)."""
    now = core.clock()

    def add(session: Any) -> None:
        for i in range(m):
            for name in names:
                enqueue(
                    session,
                    key=f"iso:{tag}:{i}@{NOTIFY}:{name}",
                    destination=f"{NOTIFY}:{name}",
                    kind="alert",
                    reply=alert(i),
                    now=now,
                    ref=f"alert:{tag}:{i}",
                )

    await core.db.write(add)
    target = m * sum(1 for n in names if n != SLOW)
    progress = Progress(f"isolation: {tag}", target)
    try:
        return await looped(
            core,
            deliver,
            wake,
            count=target,
            wanted=lambda delivery: delivery.channel != SLOW,
            limit=limit,
            progress=progress,
        )
    finally:
        progress.close()


async def bench_isolation(
    where: Where, configs: Path, receiver: Receiver, args: argparse.Namespace
) -> None:
    m, slow_s = args.isolation, args.slow_ms / 1000
    print(
        f"\n3. Isolation: {m} messages for each of {len(FAST)} fast destinations, interleaved "
        f"with {m} for one\n   whose receiver answers after {args.slow_ms} ms; run_deliveries "
        "(as `calcifer run` delivers) until the\n   fast ones' are all delivered, then stopped; "
        "beside the same with the slow one absent.",
        flush=True,
    )
    toml = destination(SLOW, f"{receiver.url}/slow/{SLOW}")
    toml += "".join(destination(n, f"{receiver.url}/fast/{n}") for n in FAST)
    limit = m * slow_s * 2 + 10
    with where("isolation") as url:
        async with notify_core(url, toml, configs, "isolation") as (core, notifier):
            deliver = notifier_deliverer(core, notifier)
            wake = core.outbox_wake()
            await race(core, deliver, wake, FAST, args.warmup, "warmup", limit)
            await receiver.stats()
            alone = await race(core, deliver, wake, FAST, m, "alone", limit)
            await receiver.expect(m * len(FAST), "fast ones alone")
            beside = await race(core, deliver, wake, (SLOW, *FAST), m, "beside", limit)
            await receiver.stats()

    def row(label: str, r: Looped) -> str:
        took = f"{r.took:>10.2f} s" if r.took is not None else f"{'> ' + str(limit):>10} s"
        slow = sum(1 for d in r.sent if d.channel == SLOW)
        return f"  {label:<38}{took}{slow:>11}{len(r.parts.claims):>8}{r.stopping * 1e3:>12.0f} ms"

    print(f"\n  {'':<38}{'fast done':>12}{'slow sent':>11}{'claims':>8}{'stopping':>15}")
    print(row("the slow destination absent", alone))
    print(row(f"beside the slow one ({args.slow_ms} ms per answer)", beside))
    if alone.took and beside.took:
        print(
            f"  ratio: {beside.took / alone.took:.1f}x (about 1 when a slow destination delays "
            f"only itself; sending\n  everything in order would take about {m} × "
            f"{args.slow_ms} ms = {m * slow_s:.0f} s)"
        )
    if beside.took:
        slow = sum(1 for d in beside.sent if d.channel == SLOW)
        print(
            f"  by the time the fast ones' {m * len(FAST)} were sent, {slow} of the slow one's "
            f"{m} were (at one per\n  {args.slow_ms} ms, {beside.took / slow_s:.1f} could have "
            'been); "slow sent": by then; "stopping": from\n  setting stop until '
            "run_deliveries returned (the slow one's message in flight is awaited)"
        )


# -- main -------------------------------------------------------------------------


async def run_all(
    label: str, where: Where, configs: Path, receiver: Receiver, args: argparse.Namespace
) -> None:
    print(f"\n== {label} ==", flush=True)
    await bench_throughput(where, configs, receiver, args)
    await bench_fanout(where, configs, args)
    await bench_isolation(where, configs, receiver, args)


async def main(args: argparse.Namespace) -> None:
    with scratch_databases() as sqlite, tempfile.TemporaryDirectory() as scratch:
        configs = Path(scratch)
        async with receiver_in_subprocess(args.slow_ms) as receiver:
            started = time.perf_counter()
            await run_all(
                "SQLite (a temporary file)",
                lambda name: contextlib.nullcontext(sqlite(name)),
                configs,
                receiver,
                args,
            )
            if args.postgres:
                await run_all(
                    "PostgreSQL (a throwaway schema per section)",
                    lambda name: postgres_schema(args.postgres),
                    configs,
                    receiver,
                    args,
                )
            print(f"\n(the whole run took {time.perf_counter() - started:.0f} s)")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, help="messages delivered in 1. (2000)")
    parser.add_argument("--fanout", type=int, help="messages enqueued per row of 2. (1000)")
    parser.add_argument("--destinations", type=int, default=3, help="webhook destinations in 1.")
    parser.add_argument(
        "--isolation", type=int, help="messages per destination in 3. (100)", metavar="M"
    )
    parser.add_argument("--slow-ms", type=int, default=200, help="the slow receiver's delay in 3.")
    parser.add_argument("--rounds", type=int, help="rounds of 1. and 2., added up (1)")
    parser.add_argument("--warmup", type=int, help="uncounted messages first (20)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds: --messages 200 --fanout 200 --isolation 10 --warmup 5",
    )
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if min(args.messages, args.destinations, args.fanout, args.isolation, args.rounds) < 1:
        parser.error("--messages, --destinations, --fanout, --isolation, --rounds: at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


if __name__ == "__main__":
    args = arguments()
    asyncio.run(serve_receiver(args.slow_ms) if args.serve_fake else main(args))
