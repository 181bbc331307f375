"""What does the Slack adapter cost on top of Slack's own client library?

Everything runs against tests/fakeslack.py on 127.0.0.1 with the real slack_sdk
and slack_bolt; the adapter is built as ``calcifer run`` builds it
(``chat_adapters`` on settings from an environment, a migrated SQLite file).
Each figure stands beside a baseline measured in the same process:

1. Slash commands over Socket Mode. ``--commands`` envelopes (``whoami`` and
   ``status`` alternating) pushed with ``FakeSlack.push``: the ack latency
   (envelope sent → ack frame back, what Slack's 3 s limit is about; the target
   is p95 under 1 s) and the end-to-end latency (envelope sent → answer at the
   response_url for ``whoami``, at chat.postMessage for ``status``). Baseline:
   a bare ``slack_sdk`` SocketModeClient whose listener acks at once (no bolt,
   no Calcifer: what the transport alone costs), then sends one fixed answer
   to the same place; between the two, slack_bolt alone (a listener that acks
   first, then sends the same fixed answer), to tell bolt's share from ours.
   Two ways of pushing: one at a time (the next envelope after the previous
   answer) and back to back (the next one right after the previous ack,
   answers still in flight). The fake Slack is in this process:
   its cost is in every row. Each ``status`` goes to a channel of its own so
   the adapter's 1 s-per-channel pacing never applies to the answers.
2. Alert delivery. ``--alerts`` alert posts to ``--channels`` channels
   enqueued straight into the outbox, then ``deliver_pending`` in a loop until
   all are sent, with the pacing switched off (``Pacer(0)``: production paces
   1 message/s per channel on purpose). Messages per second and CPU seconds
   per 1,000 (``time.process_time``: this process, worker threads included).
   Baseline: the same number of chat.postMessage calls with the same, already
   rendered, arguments made one after another by a bare AsyncWebClient; the
   ratio is the adapter's extra cost (rendering, outbox bookkeeping, database
   writes). ``--rounds`` rounds, the three rows interleaved, are added up
   (``sent`` is rounds × alerts). Here the fake Slack runs in a subprocess so
   that its CPU is not counted.

    python benchmarks/bench_slack.py [--commands 200] [--alerts 500] [--channels 5]
        [--rounds 3] [--warmup 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters import chat_adapters
from adapters.slack_adapter import METADATA_EVENT, Pacer, SlackAdapter
from adapters.slack_blocks import render
from calcifer_bot.core import Core
from calcifer_bot.outbox import Delivery, deliver_pending, enqueue
from calcifer_bot.reply import Button, Field, MessageRef, Reply, Status
from calcifer_bot.runtime import open_core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/
from tests.conftest import make_settings
from tests.fakeslack import PROXY_VARIABLES, FakeSlack, slash_command

BOT_TOKEN, APP_TOKEN = "xoxb-bench", "xapp-bench"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ANSWER_TIMEOUT_S = 10.0


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
    return f"{p50:>8.1f}x{p95:>8.1f}x"


# -- 1. slash commands ----------------------------------------------------------


class TimedFake(FakeSlack):
    """The fake, noting when an answer arrives: at a response_url or as chat.postMessage."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.expected: dict[str, asyncio.Future[float]] = {}

    def expect(self, key: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.expected[key] = future
        return future

    def _arrived(self, key: str) -> None:
        future = self.expected.pop(key, None)
        if future is not None and not future.done():
            future.set_result(time.monotonic())

    async def _response(self, request: web.Request) -> web.StreamResponse:
        answer = await super()._response(request)
        self._arrived("response/" + request.match_info["n"])
        return answer

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        answer = super()._post_message(args)
        self._arrived("channel/" + str(args.get("channel")))
        return answer


@dataclass
class Latencies:
    acks: list[float] = field(default_factory=list)
    answers: dict[str, list[float]] = field(default_factory=lambda: {"whoami": [], "status": []})
    missing: int = 0

    @property
    def all_answers(self) -> list[float]:
        return [s for samples in self.answers.values() for s in samples]


_status_channels = iter(range(1000, 10**9))


def envelope(fake: TimedFake, i: int) -> tuple[str, dict[str, str], str]:
    """The i-th command, its slash_commands payload, and where its answer will show up."""
    url = fake.response_url()
    if i % 2 == 0:  # ephemeral: answered through the response_url
        return (
            "whoami",
            slash_command("whoami", response_url=url),
            "response/" + url.rsplit("/")[-1],
        )
    channel = f"C{next(_status_channels)}"  # in the channel; a fresh one so pacing never waits
    payload = slash_command("status", channel=channel, response_url=url)
    return "status", payload, "channel/" + channel


async def push_commands(fake: TimedFake, n: int, *, back_to_back: bool) -> Latencies:
    out = Latencies()
    waiting: list[tuple[str, float, asyncio.Future[float]]] = []
    for i in range(n):
        text, payload, key = envelope(fake, i)
        arrival = fake.expect(key)
        sent = time.monotonic()
        ack = await fake.push("slash_commands", payload)
        out.acks.append(ack.seconds)
        waiting.append((text, sent, arrival))
        if not back_to_back:
            await asyncio.wait([arrival], timeout=ANSWER_TIMEOUT_S)
    if waiting:
        await asyncio.wait([f for _, _, f in waiting], timeout=ANSWER_TIMEOUT_S)
    for text, sent, arrival in waiting:
        if arrival.done():
            out.answers[text].append(arrival.result() - sent)
        else:
            arrival.cancel()
            out.missing += 1
    return out


@contextlib.asynccontextmanager
async def bare_socket_client(fake: TimedFake) -> AsyncIterator[None]:
    """slack_sdk's own Socket Mode client: ack at once, then one fixed answer."""
    web_client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(payload: dict[str, Any]) -> None:
        if payload["text"] == "whoami":
            await AsyncWebhookClient(payload["response_url"]).send(
                text="You are slack:U1.", response_type="ephemeral"
            )
        else:
            await web_client.chat_postMessage(channel=payload["channel_id"], text="All clear.")

    async def listener(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        if req.type == "slash_commands":
            task = asyncio.ensure_future(answer(req.payload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    client = SocketModeClient(app_token=APP_TOKEN, web_client=web_client)
    client.socket_mode_request_listeners.append(listener)
    try:
        await client.connect()
        await fake.connected()
        yield
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


@contextlib.asynccontextmanager
async def bolt_only(fake: TimedFake) -> AsyncIterator[None]:
    """slack_bolt without Calcifer: a listener that acks, then sends one fixed answer."""
    app = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url), signing_secret=SECRET
    )

    @app.command("/calcifer")
    async def on_command(ack: Any, command: dict[str, Any], respond: Any, client: Any) -> None:
        await ack()
        if command["text"] == "whoami":
            await respond(text="You are slack:U1.", response_type="ephemeral")
        else:
            await client.chat_postMessage(channel=command["channel_id"], text="All clear.")

    handler = AsyncSocketModeHandler(app, APP_TOKEN)
    try:
        await handler.connect_async()
        await fake.connected()
        yield
    finally:
        await handler.close_async()


@contextlib.asynccontextmanager
async def calcifer_socket(core: Core, fake: TimedFake) -> AsyncIterator[SlackAdapter]:
    [adapter] = chat_adapters(core, core.settings)
    assert isinstance(adapter, SlackAdapter)
    try:
        await adapter.start()
        await fake.connected()
        yield adapter
    finally:
        await adapter.stop()


async def wait_disconnected(fake: TimedFake) -> None:
    for _ in range(500):  # the closed client's socket leaves the fake in a moment
        if not fake._sockets:
            return
        await asyncio.sleep(0.01)


async def bench_commands(core: Core, fake: TimedFake, args: argparse.Namespace) -> None:
    n = args.commands
    print(
        f"1. Slash commands over Socket Mode: {n} envelopes (whoami, status alternating) after\n"
        f"   {args.warmup} warm-up ones; Slack gives up after 3 s, the target is p95 < 1 s.\n"
        "   The fake Slack shares this process and loop: its cost is in every row."
    )
    results: dict[tuple[str, bool], Latencies] = {}
    clients: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = {
        "bare": lambda: bare_socket_client(fake),
        "bolt": lambda: bolt_only(fake),
        "calcifer": lambda: calcifer_socket(core, fake),
    }
    for who, opened in clients.items():
        async with opened():
            for back_to_back in (False, True):
                await push_commands(fake, args.warmup, back_to_back=back_to_back)
                results[who, back_to_back] = await push_commands(fake, n, back_to_back=back_to_back)
        await wait_disconnected(fake)

    head = f"{'':<44}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
    for back_to_back in (False, True):
        bare, bolt = results["bare", back_to_back], results["bolt", back_to_back]
        ours = results["calcifer", back_to_back]
        how = (
            "back to back: the next envelope right after the previous ack"
            if back_to_back
            else "one at a time: the next envelope after the previous answer"
        )
        print(f"\n{how}\n{head}")
        rows: list[tuple[str, list[float]]] = [
            ("ack     bare SocketModeClient, acks at once", bare.acks),
            ("        bolt alone, listener acks first", bolt.acks),
            ("        Calcifer (bolt + adapter)", ours.acks),
        ]
        for label, samples in rows:
            print(f"{label:<44}{len(samples):>5}{ms(samples)}")
        print(f"{'        ratio Calcifer / bare (p50, p95)':<49}{ratio(ours.acks, bare.acks)}")
        print(f"{'        ratio Calcifer / bolt alone':<49}{ratio(ours.acks, bolt.acks)}")
        rows = [
            ("answer  bare: ack, then one post", bare.all_answers),
            ("        bolt alone: ack, then one post", bolt.all_answers),
            ("        Calcifer whoami (response_url)", ours.answers["whoami"]),
            ("        Calcifer status (chat.postMessage)", ours.answers["status"]),
            ("        Calcifer, both", ours.all_answers),
        ]
        for label, samples in rows:
            print(f"{label:<44}{len(samples):>5}{ms(samples)}")
        print(
            f"{'        ratio Calcifer / bare (p50, p95)':<49}"
            f"{ratio(ours.all_answers, bare.all_answers)}"
        )
        by_bolt = ratio(ours.all_answers, bolt.all_answers)
        print(f"{'        ratio Calcifer / bolt alone':<49}{by_bolt}")
        slow = sum(1 for s in ours.acks if s >= 1.0)
        late = sum(1 for s in ours.acks if s >= 3.0)
        print(
            f"        Calcifer acks ≥ 1 s: {slow}, ≥ 3 s: {late}; "
            f"answers missing after {ANSWER_TIMEOUT_S:.0f} s: {ours.missing} "
            f"(bare: {bare.missing}, bolt: {bolt.missing})"
        )


# -- 2. alert delivery ----------------------------------------------------------


def alert(i: int) -> Reply:
    """Shaped like calcifer_bot.alerts.render's "is down" message."""
    name = f"api-{i:04d}"
    return Reply(
        title=f"{name} is down",
        text=f"{name} is down since 2026-12-03 12:00 UTC (2 min ago).",
        status=Status.ERROR,
        fields=(
            Field("Target", f"https://{name}.example.org/health"),
            Field("Check", "http, every 60 s, 3 failures"),
            Field("Error", "HTTP 503 Service Unavailable", inline=False),
        ),
        footer=f"Incident #{i}",
        buttons=(
            Button("Acknowledge", f"ack {i}", "primary"),
            Button("Mute 1 h", f"mute {name} 1h"),
            Button("Re-check now", f"check {name}"),
        ),
    )


async def serve_fake() -> None:
    """The --serve-fake child: a fake Slack until stdin closes."""
    async with contextlib.AsyncExitStack() as stack:
        fake = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        await fake.start()
        stack.push_async_callback(fake.close)
        print(fake.api_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.asynccontextmanager
async def fake_in_subprocess() -> AsyncIterator[str]:
    """The API URL of a fake Slack in a child process (its CPU is not ours)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-fake",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.startswith(b"http://127.0.0.1:"):
            raise RuntimeError(f"the fake Slack did not start: {line!r}")
        yield line.decode().strip()
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@dataclass
class Run:
    sent: int
    wall: float
    cpu: float
    per_message: list[float]

    def add(self, other: Run) -> None:
        self.sent += other.sent
        self.wall += other.wall
        self.cpu += other.cpu
        self.per_message += other.per_message

    def row(self, label: str) -> str:
        rate = self.sent / self.wall if self.wall else 0.0
        per_1000 = self.cpu / self.sent * 1000 if self.sent else 0.0
        return f"{label:<44}{self.sent:>6}{rate:>9.0f}{per_1000:>11.2f}{ms(self.per_message)}"


def post_args(reply: Reply, channel: str, delivery_id: int) -> dict[str, Any]:
    """What the adapter sends to chat.postMessage for an outbox post."""
    metadata = {"event_type": METADATA_EVENT, "event_payload": {"id": delivery_id}}
    return {
        "channel": channel,
        "thread_ts": None,
        "metadata": metadata,
        **render(reply).first.kwargs(),
    }


async def bare_posts(client: AsyncWebClient, calls: list[dict[str, Any]]) -> Run:
    per: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for kwargs in calls:
        t0 = time.perf_counter()
        await client.chat_postMessage(**kwargs)
        per.append(time.perf_counter() - t0)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Run(len(calls), wall, cpu, per)


@dataclass
class Breakdown:
    claims: list[float] = field(default_factory=list)
    delivers: list[float] = field(default_factory=list)
    marks: list[float] = field(default_factory=list)


def timed(fn: Callable[..., Awaitable[Any]], into: list[float]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fn(*a, **kw)
        finally:
            into.append(time.perf_counter() - t0)

    return wrapper


async def outbox_posts(
    core: Core, adapter: SlackAdapter, m: int, channels: int, tag: str
) -> tuple[Run, Breakdown, int]:
    now = core.clock()

    def add(session: Any) -> int:
        return sum(
            enqueue(
                session,
                key=f"bench:{tag}:{i}",
                destination=f"slack:C{1 + i % channels}",
                kind="alert",
                reply=alert(i),
                now=now,
                ref=f"alert:{tag}:{i}",
            )
            for i in range(m)
        )

    assert await core.db.write(add) == m
    parts = Breakdown()
    outbox = core.outbox
    outbox.claim = timed(outbox.claim, parts.claims)  # type: ignore[method-assign,assignment]
    outbox.sent = timed(outbox.sent, parts.marks)  # type: ignore[method-assign,assignment]
    deliver: Callable[[Delivery], Awaitable[MessageRef | None]] = timed(
        adapter.deliver, parts.delivers
    )
    sent = passes = 0
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while sent < m:
            done = await deliver_pending(outbox, deliver, ("slack",))
            passes += 1
            if done == 0:
                break
            sent += done
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        del outbox.claim, outbox.sent  # back to the class's methods
    per = [d + s for d, s in zip(parts.delivers, parts.marks, strict=False)]
    return Run(sent, wall, cpu, per), parts, passes


async def bench_alerts(url: str, args: argparse.Namespace) -> None:
    m, channels = args.alerts, args.channels
    print(
        f"\n2. Alert delivery: {m} alert posts to {channels} channels enqueued in the outbox, "
        f"then deliver_pending\n   until all are sent; rounds: {args.rounds}, the rows "
        "interleaved and added up. Pacing is off\n   (Pacer(0)): in production the adapter "
        "posts at most 1 message/s per channel on purpose,\n"
        f"   so there {m} alerts take at least {m / channels:.0f} s. The fake Slack runs in a "
        "subprocess (its CPU is\n   not counted). Every call opens a new connection, except "
        "in the keep-alive row."
    )
    async with fake_in_subprocess() as api_url, open_core(make_settings(url)) as core:
        settings = make_settings(
            url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            CALCIFER_SLACK_API_URL=api_url,
        )
        [adapter] = chat_adapters(core, settings)  # HTTP mode: nothing connects
        assert isinstance(adapter, SlackAdapter)
        adapter.pacer = Pacer(0)
        fresh = AsyncWebClient(token=BOT_TOKEN, base_url=api_url)
        async with aiohttp.ClientSession() as session:
            pooled = AsyncWebClient(token=BOT_TOKEN, base_url=api_url, session=session)
            calls = [post_args(alert(i), f"C{1 + i % channels}", i) for i in range(m)]
            warm = calls[: args.warmup]
            await bare_posts(fresh, warm)
            await bare_posts(pooled, warm)
            await outbox_posts(core, adapter, args.warmup, channels, "warmup")
            base, keep_alive, ours = Run(0, 0, 0, []), Run(0, 0, 0, []), Run(0, 0, 0, [])
            parts, passes = Breakdown(), 0
            for r in range(args.rounds):  # interleaved, so drift hits every row alike
                base.add(await bare_posts(fresh, calls))
                keep_alive.add(await bare_posts(pooled, calls))
                run, split, n = await outbox_posts(core, adapter, m, channels, f"run{r}")
                ours.add(run)
                parts.claims += split.claims
                parts.delivers += split.delivers
                parts.marks += split.marks
                passes += n
        await adapter.stop()
        pending = await core.outbox.pending(("slack",))

    t0 = time.perf_counter()
    replies = [alert(i) for i in range(m)]
    for reply in replies:
        render(reply)
    render_s = (time.perf_counter() - t0) / m

    print(
        f"\n{'':<44}{'sent':>6}{'msg/s':>9}{'CPU s/1000':>11}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
    )
    print(base.row("bare AsyncWebClient, sequential"))
    print(keep_alive.row("bare AsyncWebClient, one keep-alive session"))
    print(ours.row("Calcifer: deliver_pending + adapter.deliver"))
    rate = (base.sent / base.wall) / (ours.sent / ours.wall) if ours.sent and ours.wall else 0.0
    cpu = (ours.cpu / ours.sent) / (base.cpu / base.sent) if ours.sent and base.cpu else 0.0
    print(f"{'ratio Calcifer / bare (time, CPU)':<44}{'':>6}{rate:>8.1f}x{cpu:>10.1f}x")
    print(f"{'where Calcifer spends it':<50}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, samples in (
        ("  outbox.claim (one transaction per pass of 50)", parts.claims),
        ("  adapter.deliver (render + chat.postMessage)", parts.delivers),
        ("  outbox.sent (one transaction per message)", parts.marks),
    ):
        print(f"{label:<50}{ms(samples)}")
    print(f"{'  render() alone, mean':<50}{render_s * 1e3:>9.2f}")
    print(f"  {passes} deliver_pending passes; {pending} messages left pending")


async def main(args: argparse.Namespace) -> None:
    for name in PROXY_VARIABLES:  # slack_sdk honours these and ignores NO_PROXY
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as scratch:
        fake = TimedFake(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        await fake.start()
        try:
            settings = make_settings(
                f"sqlite:///{scratch}/commands.db",
                CALCIFER_ADMINS="slack:U1",
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_APP_TOKEN=APP_TOKEN,
                SLACK_SIGNING_SECRET=SECRET,
                CALCIFER_SLACK_API_URL=fake.api_url,
            )
            async with open_core(settings) as core:
                await bench_commands(core, fake, args)
        finally:
            await fake.close()
        await bench_alerts(f"sqlite:///{scratch}/alerts.db", args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200, help="slash commands per run")
    parser.add_argument("--alerts", type=int, default=500, help="alert posts per run")
    parser.add_argument("--channels", type=int, default=5, help="channels the alerts go to")
    parser.add_argument("--rounds", type=int, default=3, help="alert delivery rounds")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted commands/posts first")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake())
    else:
        asyncio.run(main(args))
