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
import functools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
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

from adapters.slack_adapter import METADATA_EVENT, Pacer, SlackAdapter
from adapters.slack_blocks import render
from calcifer_bot.core import Core
from calcifer_bot.reply import Field, Reply
from calcifer_bot.runtime import open_core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for benchmarks/ and tests/
from benchmarks import common
from benchmarks.common import (
    ANSWER_TIMEOUT_S,
    MS_HEAD,
    RUN_HEAD,
    Breakdown,
    Run,
    at_least,
    latency_row,
    outbox_posts,
    print_breakdown,
    ratio,
    scratch_databases,
    sequential,
    the_adapter,
    wait_until,
)
from tests.conftest import make_settings
from tests.fakeslack import PROXY_VARIABLES, FakeSlack, slash_command

BOT_TOKEN, APP_TOKEN = "xoxb-bench", "xapp-bench"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


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
    adapter = the_adapter(core, core.settings, SlackAdapter)
    try:
        await adapter.start()
        await fake.connected()
        yield adapter
    finally:
        await adapter.stop()


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
        await wait_until(lambda: not fake._sockets)  # the closed client's socket has left

    head = f"{'':<44}{'n':>5}{MS_HEAD}"
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
            print(latency_row(label, samples, 44))
        print(f"{'        ratio Calcifer / bare (p50, p95)':<48}{ratio(ours.acks, bare.acks)}")
        print(f"{'        ratio Calcifer / bolt alone':<48}{ratio(ours.acks, bolt.acks)}")
        rows = [
            ("answer  bare: ack, then one post", bare.all_answers),
            ("        bolt alone: ack, then one post", bolt.all_answers),
            ("        Calcifer whoami (response_url)", ours.answers["whoami"]),
            ("        Calcifer status (chat.postMessage)", ours.answers["status"]),
            ("        Calcifer, both", ours.all_answers),
        ]
        for label, samples in rows:
            print(latency_row(label, samples, 44))
        print(
            f"{'        ratio Calcifer / bare (p50, p95)':<48}"
            f"{ratio(ours.all_answers, bare.all_answers)}"
        )
        by_bolt = ratio(ours.all_answers, bolt.all_answers)
        print(f"{'        ratio Calcifer / bolt alone':<48}{by_bolt}")
        print(
            f"        Calcifer acks ≥ 1 s: {at_least(ours.acks, 1.0)}, "
            f"≥ 3 s: {at_least(ours.acks, 3.0)}; "
            f"answers missing after {ANSWER_TIMEOUT_S:.0f} s: {ours.missing} "
            f"(bare: {bare.missing}, bolt: {bolt.missing})"
        )


# -- 2. alert delivery ----------------------------------------------------------


def alert_fields(name: str) -> tuple[Field, ...]:
    return (
        Field("Target", f"https://{name}.example.org/health"),
        Field("Check", "http, every 60 s, 3 failures"),
        Field("Error", "HTTP 503 Service Unavailable", inline=False),
    )


def alert(i: int) -> Reply:
    """The benchmarks' typical alert, with the fields of this one."""
    return common.alert(i, alert_fields)


def channel_of(i: int, channels: int) -> str:
    return f"C{1 + i % channels}"


async def serve_fake() -> None:
    """The --serve-fake child: a fake Slack until stdin closes."""
    async with contextlib.AsyncExitStack() as stack:
        fake = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        await fake.start()
        stack.push_async_callback(fake.close)
        print(fake.api_url, flush=True)
        await common.until_stdin_closes()


@contextlib.asynccontextmanager
async def fake_in_subprocess() -> AsyncIterator[str]:
    """The API URL of a fake Slack in a child process (its CPU is not ours)."""
    async with common.fake_child(__file__) as (_, line):
        if not line.startswith(b"http://127.0.0.1:"):
            raise RuntimeError(f"the fake Slack did not start: {line!r}")
        yield line.decode().strip()


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
    return await sequential(calls, lambda kwargs: client.chat_postMessage(**kwargs))


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
        adapter = the_adapter(core, settings, SlackAdapter)  # HTTP mode: nothing connects
        adapter.pacer = Pacer(0)
        posts = functools.partial(
            outbox_posts,
            core,
            adapter.deliver,
            platform="slack",
            channel=lambda i: channel_of(i, channels),
            reply=alert,
        )
        fresh = AsyncWebClient(token=BOT_TOKEN, base_url=api_url)
        async with aiohttp.ClientSession() as session:
            pooled = AsyncWebClient(token=BOT_TOKEN, base_url=api_url, session=session)
            calls = [post_args(alert(i), channel_of(i, channels), i) for i in range(m)]
            warm = calls[: args.warmup]
            await bare_posts(fresh, warm)
            await bare_posts(pooled, warm)
            await posts(args.warmup, "warmup")
            base, keep_alive, ours = Run.empty(), Run.empty(), Run.empty()
            parts, passes = Breakdown(), 0
            for r in range(args.rounds):  # interleaved, so drift hits every row alike
                base.add(await bare_posts(fresh, calls))
                keep_alive.add(await bare_posts(pooled, calls))
                run, split, n = await posts(m, f"run{r}")
                ours.add(run)
                parts.add(split)
                passes += n
        await adapter.stop()
        pending = await core.outbox.pending(("slack",))

    t0 = time.perf_counter()
    replies = [alert(i) for i in range(m)]
    for reply in replies:
        render(reply)
    render_s = (time.perf_counter() - t0) / m

    print(f"\n{RUN_HEAD}")
    print(base.row("bare AsyncWebClient, sequential"))
    print(keep_alive.row("bare AsyncWebClient, one keep-alive session"))
    print(ours.row("Calcifer: deliver_pending + adapter.deliver"))
    rate = base.rate / ours.rate if ours.rate else 0.0
    cpu = ours.cpu_per_1000 / base.cpu_per_1000 if ours.sent and base.cpu else 0.0
    print(f"{'ratio Calcifer / bare (time, CPU)':<44}{'':>6}{rate:>8.1f}x{cpu:>10.1f}x")
    print_breakdown(
        "where Calcifer spends it", parts, "adapter.deliver (render + chat.postMessage)"
    )
    print(f"{'  render() alone, mean':<50}{render_s * 1e3:>9.2f}")
    print(f"  {passes} deliver_pending passes; {pending} messages left pending")


async def main(args: argparse.Namespace) -> None:
    for name in PROXY_VARIABLES:  # slack_sdk honours these and ignores NO_PROXY
        os.environ.pop(name, None)
    with scratch_databases() as db:
        fake = TimedFake(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        await fake.start()
        try:
            settings = make_settings(
                db("commands"),
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
        await bench_alerts(db("alerts"), args)


if __name__ == "__main__":
    args = common.arguments(
        __doc__,
        ("--commands", 200, "slash commands per run"),
        alerts_per="run",
        warmup="commands",
    )
    asyncio.run(serve_fake() if args.serve_fake else main(args))
