"""What does the Discord adapter cost on top of discord.py?

Everything runs against tests/fakediscord.py on 127.0.0.1 with the real
discord.py; the adapter is built as ``calcifer run`` builds it
(``chat_adapters`` on settings from an environment, a migrated SQLite file).
Each figure stands beside a baseline measured in the same process:

1. Interactions over the gateway. ``--interactions`` ``/calcifer`` commands
   (``whoami`` and ``status`` alternating) pushed with ``FakeDiscord.push_slash``:
   the acknowledgement latency is ``Interaction.latency``, from the fake sending
   INTERACTION_CREATE to it receiving the accepted callback (what Discord's 3 s
   limit is about). Both commands are answered in the callback itself (type 4),
   so that is also when the user sees the answer. Baseline: a bare discord.py
   ``Client`` with an ``app_commands.CommandTree`` whose ``/calcifer`` answers
   ``send_message("ok")`` at once (no Calcifer: what discord.py and the fake
   cost). Two ways of pushing: one at a time (the next interaction after the
   previous callback) and in bursts of ``--burst`` pushed together. Calcifer's
   latency is split into ``core.dispatch`` (role lookup, the handler, the audit
   row: the database) and the rest (gateway, adapter, render, callback). The
   fake Discord is in this process and loop: its cost is in every row.
2. Alert delivery. ``--alerts`` alert posts to ``--channels`` channels
   enqueued straight into the outbox, then ``deliver_pending`` in a loop until
   all are sent. Messages per second and CPU seconds per 1,000
   (``time.process_time``: this process, worker threads included). Baseline:
   the same number of ``PartialMessageable.send(embed=…)`` calls by a bare
   discord.py client with the already built Embed; then the same with the
   three buttons as a prebuilt View (the payload the adapter sends), and that
   bare send as the outbox's deliverer (the outbox's own cost, so that what is
   left is the adapter's). Only REST is logged in, for every row: no gateway,
   so no MESSAGE_CREATE echoes. discord.py's rate limiting waits only when a
   response carries X-RateLimit-* headers, or on a 429 (or 5xx) it retries; the
   output says what the fake sent and whether discord.py ever had to wait.
   ``--rounds`` rounds, the rows interleaved, are added up. Here the fake
   Discord runs in a subprocess so that its CPU is not counted.
3. Rendering. ``adapters.discord_embeds.render`` of a typical alert, in µs per
   call, beside ``adapters.slack_blocks.render`` of the same Reply; and the
   adapter's conversion of the rendered message into discord.py objects
   (``Embed.from_dict`` and a View of CalciferButtons), which every send does.

    python benchmarks/bench_discord.py [--interactions 300] [--burst 10] [--alerts 500]
        [--channels 5] [--rounds 3] [--warmup 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Ratelimit, Route

from adapters.discord_adapter import DiscordAdapter, intents
from adapters.discord_embeds import button_id, render
from adapters.slack_blocks import render as slack_render
from calcifer_bot.core import Core
from calcifer_bot.outbox import Deliver, Delivery
from calcifer_bot.reply import Field, MessageRef, Reply
from calcifer_bot.runtime import open_core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for benchmarks/ and tests/
from benchmarks import common
from benchmarks.common import (
    ANSWER_TIMEOUT_S,
    MS_HEAD,
    RUN_HEAD,
    Breakdown,
    Progress,
    Run,
    at_least,
    latency_row,
    outbox_posts,
    print_breakdown,
    ratio,
    scratch_databases,
    sequential,
    the_adapter,
    timed,
    wait_until,
)
from tests.conftest import make_settings
from tests.fakediscord import (
    ALERTS,
    ALICE,
    BOB,
    BOT_TOKEN,
    CHANNEL_MESSAGE,
    GUILD,
    OPS_ROLE,
    FakeDiscord,
    Interaction,
)

FIRST_CHANNEL = 5000  # the benchmark's alert channels, added to the fake: 5000, 5001, …
WATCHED_LOGGERS = ("discord.http", "discord.webhook")  # REST, and interaction callbacks
RATELIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
    "Retry-After",
)


def point_discord_py_at(api_url: str, gateway_url: str | None = None) -> None:
    """discord.py's two process-global URLs, for the bare clients."""
    Route.BASE = api_url
    if gateway_url is not None:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def discord_env(api_url: str, gateway_url: str) -> dict[str, str]:
    """As tests/test_discord.py's ``discord_env``."""
    return {
        "CALCIFER_ADMINS": f"discord:{ALICE}",
        "CALCIFER_OPERATORS": f"discord-role:{OPS_ROLE}",
        "DISCORD_BOT_TOKEN": BOT_TOKEN,
        "CALCIFER_DISCORD_API_URL": api_url,
        "CALCIFER_DISCORD_GATEWAY_URL": gateway_url,
        "CALCIFER_DISCORD_GUILDS": str(GUILD),
    }


class LimiterWatch(logging.Handler):
    """Whether discord.py's rate limiting ever had anything to obey.

    ``Ratelimit.update`` (REST) runs only for a response with X-RateLimit-*
    headers, and a bucket can wait only after one; the webhook adapter (every
    interaction callback) parses them only on ``X-RateLimit-Remaining: 0``; a 429
    or 5xx retry is logged as a warning. All three are counted, at no cost when
    they never happen.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warnings: list[str] = []
        self.updates = 0
        self._saved: tuple[Any, Any] = (None, None)

    def emit(self, record: logging.LogRecord) -> None:
        self.warnings.append(record.getMessage())

    def __enter__(self) -> LimiterWatch:
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).addHandler(self)
        self._saved = update, parse = Ratelimit.update, discord.utils._parse_ratelimit_header

        def counted_update(bucket: Ratelimit, *a: Any, **kw: Any) -> None:
            self.updates += 1
            update(bucket, *a, **kw)

        def counted_parse(*a: Any, **kw: Any) -> float:
            self.updates += 1
            return parse(*a, **kw)

        Ratelimit.update = counted_update  # type: ignore[method-assign]
        discord.utils._parse_ratelimit_header = counted_parse
        return self

    def __exit__(self, *exc: object) -> None:
        Ratelimit.update, discord.utils._parse_ratelimit_header = self._saved
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(self)

    @property
    def limited(self) -> bool:
        return bool(self.updates or self.warnings)

    def verdict(self, statuses: set[int], headers: bool = False) -> str:
        counts = (
            f"discord.py rate-limit header reads: {self.updates}, retry warnings: "
            f"{len(self.warnings)}"
        )
        if headers or self.limited or any(s == 429 or s >= 500 for s in statuses):
            return f"{counts}: SOME FIGURES MAY INCLUDE RATE-LIMIT OR RETRY WAITS."
        return f"{counts}: no figure includes a rate-limit wait."


# -- 1. interactions ------------------------------------------------------------


@dataclass
class Latencies:
    by_text: dict[str, list[float]] = field(default_factory=lambda: {"whoami": [], "status": []})
    callback_types: Counter[int] = field(default_factory=Counter)
    in_order: list[float] = field(default_factory=list)  # as pushed
    dispatch: list[float] = field(default_factory=list)  # core.dispatch, as called
    refused: int = 0  # a callback the fake refused (late past 3 s, or a second one)
    missing: int = 0  # no accepted callback within ANSWER_TIMEOUT_S

    @property
    def all(self) -> list[float]:
        return [s for samples in self.by_text.values() for s in samples]


async def settle(batch: list[tuple[str, Interaction]], out: Latencies) -> None:
    async def one(interaction: Interaction) -> None:
        with contextlib.suppress(AssertionError):  # responded() says so on a timeout
            await interaction.responded(timeout=ANSWER_TIMEOUT_S)

    await asyncio.gather(*(one(i) for _, i in batch))
    for text, interaction in batch:
        out.refused += len(interaction.refused)
        if interaction.latency is None:
            out.missing += 1
            continue
        out.by_text[text].append(interaction.latency)
        out.in_order.append(interaction.latency)
        out.callback_types[interaction.callback_type or 0] += 1


async def push_interactions(
    core: Core, fake: FakeDiscord, n: int, burst: int, progress: Progress | None = None
) -> Latencies:
    out = Latencies()
    batch: list[tuple[str, Interaction]] = []
    core.dispatch = timed(core.dispatch, out.dispatch)  # type: ignore[method-assign]
    try:
        for i in range(n):
            text = "whoami" if i % 2 == 0 else "status"
            batch.append((text, await fake.push_slash(text, user_id=BOB)))
            if len(batch) >= burst:
                await settle(batch, out)
                if progress is not None:
                    progress.step(len(batch))
                batch = []
        await settle(batch, out)
        if progress is not None:
            progress.step(len(batch))
    finally:
        del core.dispatch  # back to the class's method
    return out


@contextlib.asynccontextmanager
async def bare_tree(fake: FakeDiscord, settings: Any) -> AsyncIterator[discord.Client]:
    """discord.py alone: a CommandTree whose /calcifer answers "ok" at once."""
    point_discord_py_at(fake.api_url, fake.gateway_url)
    client = discord.Client(
        intents=intents(settings.discord), allowed_mentions=discord.AllowedMentions.none()
    )
    tree = app_commands.CommandTree(client)

    @tree.command(name="calcifer", description="Run a Calcifer command")
    async def calcifer(interaction: discord.Interaction, command: str = "help") -> None:
        await interaction.response.send_message("ok")

    before = fake.identifications
    await client.login(BOT_TOKEN)
    gateway = asyncio.create_task(client.connect(reconnect=False))
    try:
        await fake.wait_ready(count=before + 1, timeout=15)
        yield client
    finally:
        await client.close()
        gateway.cancel()
        await asyncio.gather(gateway, return_exceptions=True)


@contextlib.asynccontextmanager
async def calcifer_gateway(core: Core, fake: FakeDiscord) -> AsyncIterator[DiscordAdapter]:
    adapter = the_adapter(core, core.settings, DiscordAdapter)
    before = fake.identifications
    try:
        await adapter.start()
        await fake.wait_ready(count=before + 1, timeout=15)
        yield adapter
    finally:
        await adapter.stop()


def callback_note(out: Latencies) -> str:
    names = {CHANNEL_MESSAGE: "type 4"}
    return ", ".join(
        f"{names.get(t, f'type {t}')}: {c}" for t, c in sorted(out.callback_types.items())
    )


async def bench_interactions(core: Core, fake: FakeDiscord, args: argparse.Namespace) -> None:
    n, burst = args.interactions, args.burst
    print(
        f"1. Interactions over the gateway: {n} /calcifer commands (whoami, status alternating)\n"
        f"   after {args.warmup} warm-up ones; latency = INTERACTION_CREATE sent → accepted\n"
        "   callback (Interaction.latency). Discord refuses a callback after 3 s. The fake\n"
        "   Discord shares this process and loop: its cost is in every row.",
        flush=True,
    )
    modes = {"one at a time": 1, f"bursts of {burst}": burst}
    results: dict[tuple[str, str], Latencies] = {}
    clients: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = {
        "bare": lambda: bare_tree(fake, core.settings),
        "calcifer": lambda: calcifer_gateway(core, fake),
    }
    with LimiterWatch() as watch:
        for who, opened in clients.items():
            await wait_until(lambda: not fake.live_connections)  # the last client has left
            async with opened():
                for mode, size in modes.items():
                    await push_interactions(core, fake, args.warmup, size)
                    progress = Progress(f"{who}, {mode}", n)
                    results[who, mode] = await push_interactions(core, fake, n, size, progress)
                    progress.close()

    head = f"{'':<46}{'n':>5}{MS_HEAD}{'÷bare p50':>10}{'p95':>9}"
    for mode in modes:
        bare, ours = results["bare", mode], results["calcifer", mode]
        print(f"\n{mode}\n{head}")
        rows: list[tuple[str, list[float], bool]] = [
            ('bare discord.py tree, send_message("ok")', bare.all, False),
            ("Calcifer whoami (ephemeral embed)", ours.by_text["whoami"], True),
            ("Calcifer status (embed for the channel)", ours.by_text["status"], True),
            ("Calcifer, both", ours.all, True),
            ("  of which core.dispatch (role, run, audit)", ours.dispatch, False),
        ]
        # One at a time, the i-th dispatch is the i-th interaction's.
        if mode == "one at a time" and len(ours.in_order) == len(ours.dispatch):
            rest = [t - d for t, d in zip(ours.in_order, ours.dispatch, strict=True)]
            rows.append(("  the rest: gateway, adapter, callback", rest, True))
        for label, samples, compared in rows:
            line = latency_row(label, samples, 46)
            print(line + (ratio(samples, bare.all) if compared else ""))
        print(
            f"  Calcifer callbacks ≥ 1 s: {at_least(ours.all, 1.0)}, "
            f"≥ 3 s: {at_least(ours.all, 3.0)}; refused by the fake: "
            f"{ours.refused}, unanswered after {ANSWER_TIMEOUT_S:.0f} s: {ours.missing} "
            f"(bare: {bare.refused}, {bare.missing}); callbacks: {callback_note(ours)}"
        )
    statuses = Counter(r.status for r in fake.requests)
    print(
        f"  rate limits: the fake sends X-RateLimit-* only with injected failures (none here);"
        f"\n  its {len(fake.requests)} REST answers by status: {dict(sorted(statuses.items()))};"
        f"\n  {watch.verdict(set(statuses))}"
    )
    if fake.errors:
        print(f"  the fake Discord raised {len(fake.errors)} errors: {fake.errors[:3]!r}")


# -- 2. alert delivery ----------------------------------------------------------


def alert_fields(name: str) -> tuple[Field, ...]:
    return (
        Field("Target", f"`https://{name}.example.org/health`"),
        Field("Error", "HTTP 503 Service Unavailable"),
        Field("Latency before", "182 ms"),
        Field("Service", "checkout"),
    )


def alert(i: int) -> Reply:
    """The benchmarks' typical alert, with the fields of this one (4 inline ones)."""
    return common.alert(i, alert_fields)


def channel_of(i: int, channels: int) -> int:
    return FIRST_CHANNEL + i % channels


async def serve_fake(channels: int) -> None:
    """The --serve-fake child: a fake Discord until stdin closes, then what it answered."""
    fake = FakeDiscord()
    for n in range(channels):
        cid = FIRST_CHANNEL + n
        fake.channels[cid] = dict(fake.channels[ALERTS], id=str(cid), name=f"alerts-{n}")
    await fake.start()
    try:
        print(json.dumps({"api_url": fake.api_url, "gateway_url": fake.gateway_url}), flush=True)
        await common.until_stdin_closes()
        statuses = Counter(str(r.status) for r in fake.requests)
        print(json.dumps({"statuses": statuses, "errors": [repr(e) for e in fake.errors]}))
    finally:
        await fake.close()


@dataclass
class Child:
    api_url: str
    gateway_url: str
    proc: asyncio.subprocess.Process
    summary: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def fake_in_subprocess(channels: int) -> AsyncIterator[Child]:
    """A fake Discord in a child process (its CPU is not ours); its summary at the end."""
    async with common.fake_child(__file__, "--channels", str(channels)) as (proc, line):
        try:
            urls = json.loads(line)
        except json.JSONDecodeError:
            raise RuntimeError(f"the fake Discord did not start: {line!r}") from None
        if not urls["api_url"].startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake Discord is not on 127.0.0.1: {urls}")
        child = Child(urls["api_url"], urls["gateway_url"], proc)
        yield child
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        with contextlib.suppress(json.JSONDecodeError, TimeoutError):
            child.summary = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))


async def ratelimit_headers_of(api_url: str, channel: int) -> list[str]:
    """The X-RateLimit-*/Retry-After headers the fake puts on a successful post."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{api_url}/channels/{channel}/messages",
            json={"content": "header probe"},
            headers={"Authorization": f"Bot {BOT_TOKEN}"},
        ) as response,
    ):
        response.raise_for_status()
        return [h for h in RATELIMIT_HEADERS if h in response.headers]


def views_kept(client: discord.Client) -> tuple[int, int]:
    store = client._connection._view_store
    return len(store._views), len(store._synced_message_views)


def bare_view(reply: Reply) -> discord.ui.View:
    """The same buttons as the adapter's, as plain discord.py ones."""
    styles = {"primary": discord.ButtonStyle.primary}
    view = discord.ui.View(timeout=None)
    for b in reply.buttons:
        style = styles.get(b.style, discord.ButtonStyle.secondary)
        view.add_item(discord.ui.Button(label=b.label, style=style, custom_id=button_id(b.command)))
    return view


def bare_kwargs(m: int, *, with_view: bool) -> list[dict[str, Any]]:
    """send()'s arguments for alert(i), built before any clock starts."""
    return [
        {
            "embed": discord.Embed.from_dict(render(alert(i)).first.embeds[0]),
            **({"view": bare_view(alert(i))} if with_view else {}),
        }
        for i in range(m)
    ]


async def bare_sends(
    client: discord.Client, m: int, channels: int, tag: str, *, with_view: bool
) -> Run:
    calls = [
        (client.get_partial_messageable(channel_of(i, channels)), kwargs)
        for i, kwargs in enumerate(bare_kwargs(m, with_view=with_view))
    ]

    async def send(call: tuple[int, tuple[discord.PartialMessageable, dict[str, Any]]]) -> None:
        i, (channel, kwargs) = call
        await channel.send(**kwargs, nonce=f"bare-{tag}-{i}")

    return await sequential(enumerate(calls), send)


def bare_deliverer(client: discord.Client, m: int) -> Deliver:
    """An outbox deliverer that only sends the prebuilt payload: the outbox's cost alone."""
    prebuilt = bare_kwargs(m, with_view=True)

    async def deliver(delivery: Delivery) -> MessageRef | None:
        kwargs = prebuilt[int((delivery.ref or "").rsplit(":", 1)[1])]
        channel = client.get_partial_messageable(int(delivery.channel))
        posted = await channel.send(**kwargs, nonce=f"bare-outbox-{delivery.id}")
        return MessageRef("discord", delivery.channel, str(posted.id))

    return deliver


async def bench_alerts(url: str, args: argparse.Namespace) -> None:
    m, channels, rounds = args.alerts, args.channels, args.rounds
    print(
        f"\n2. Alert delivery: {m} alert posts (embed, 4 fields, footer, 3 buttons) to "
        f"{channels} channels,\n   sent by bare discord.py, or enqueued in the outbox and "
        f"sent by deliver_pending; rounds: {rounds},\n   the rows interleaved and added up. "
        "REST only for every row (no gateway, so no\n   MESSAGE_CREATE echoes); the fake "
        "Discord runs in a subprocess (its CPU is not counted).",
        flush=True,
    )
    async with fake_in_subprocess(channels) as child:
        settings = make_settings(url, **discord_env(child.api_url, child.gateway_url))
        async with open_core(settings) as core:
            adapter = the_adapter(core, settings, DiscordAdapter)
            point_discord_py_at(child.api_url)
            posts = functools.partial(
                outbox_posts,
                core,
                platform="discord",
                channel=lambda i: channel_of(i, channels),
                reply=alert,
            )
            bare = discord.Client(
                intents=intents(settings.discord),
                allowed_mentions=discord.AllowedMentions.none(),
                max_ratelimit_timeout=30.0,
            )
            with LimiterWatch() as watch:
                try:
                    await adapter.client.login(adapter.token)  # REST only: no gateway
                    await bare.login(BOT_TOKEN)
                    probed = await ratelimit_headers_of(child.api_url, FIRST_CHANNEL)
                    w = args.warmup
                    await bare_sends(bare, w, channels, "warmup", with_view=False)
                    await bare_sends(bare, w, channels, "warmup-v", with_view=True)
                    await posts(bare_deliverer(bare, w), w, "warmup-b")
                    await posts(adapter.deliver, w, "warmup")
                    base, viewed = Run.empty(), Run.empty()
                    outbox_only, ours = Run.empty(), Run.empty()
                    parts, bare_parts, passes = Breakdown(), Breakdown(), 0
                    progress = Progress("alert delivery, 4 rows × rounds", 4 * m * rounds)
                    for r in range(rounds):  # interleaved, so drift hits every row alike
                        base.add(await bare_sends(bare, m, channels, f"r{r}", with_view=False))
                        progress.step(m)
                        viewed.add(await bare_sends(bare, m, channels, f"v{r}", with_view=True))
                        progress.step(m)
                        deliverer = bare_deliverer(bare, m)
                        run, split, _ = await posts(deliverer, m, f"b{r}")
                        outbox_only.add(run)
                        bare_parts.add(split)
                        progress.step(m)
                        run, split, n = await posts(adapter.deliver, m, f"c{r}")
                        ours.add(run)
                        parts.add(split)
                        passes += n
                        progress.step(m)
                    progress.close()
                    pending = await core.outbox.pending(("discord",))
                    kept = {
                        who: views_kept(c)
                        for who, c in (("bare", bare), ("Calcifer", adapter.client))
                    }
                finally:
                    await bare.close()
                    await adapter.stop()
    statuses = child.summary.get("statuses", {})
    fake_errors = child.summary.get("errors", [])

    print(f"\n{RUN_HEAD}{'÷bare time':>12}{'CPU':>8}")
    print(base.row("bare send(embed=…), prebuilt Embed"))
    print(viewed.row("bare send(embed=…, view=…): same payload", base))
    print(outbox_only.row("deliver_pending + that bare send", base))
    print(ours.row("Calcifer: deliver_pending + adapter.deliver", base))
    for what, other in (("bare with the same payload", viewed), ("the outbox alone", outbox_only)):
        if ours.rate and other.cpu_per_1000:
            print(
                f"  Calcifer ÷ {what}: time {other.rate / ours.rate:.2f}x, "
                f"CPU {ours.cpu_per_1000 / other.cpu_per_1000:.2f}x"
            )
    print_breakdown(
        "where the time per message goes",
        parts,
        "adapter.deliver (render + convert + send)",
        ("  the bare deliverer's send, for comparison", bare_parts.delivers),
    )
    print(f"  {passes} deliver_pending passes for Calcifer; {pending} messages left pending")
    verdict = watch.verdict({int(code) for code in statuses}, headers=bool(probed))
    print(
        "  rate limits: X-RateLimit-*/Retry-After on the fake's answer to a post: "
        f"{', '.join(probed) or 'none'};\n  its answers by status: "
        f"{dict(sorted(statuses.items()))};\n  {verdict}"
    )
    print(
        "  views discord.py keeps for dispatch after the run (message entries, synced views): "
        + "; ".join(f"{who} {entries}, {synced}" for who, (entries, synced) in kept.items())
    )
    if fake_errors:
        print(f"  the fake Discord raised {len(fake_errors)} errors: {fake_errors[:3]}")


# -- 3. rendering ---------------------------------------------------------------


def per_call_us(fn: Callable[[Reply], Any], replies: list[Reply], repeat: int = 5) -> float:
    """The best of ``repeat`` passes over ``replies``, in µs per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for reply in replies:
            fn(reply)
        best = min(best, time.perf_counter() - t0)
    return best / len(replies) * 1e6


async def bench_render(url: str, args: argparse.Namespace) -> None:
    print(
        "\n3. Rendering a typical alert (title, text, 4 fields, footer, 3 buttons), "
        "best of 5 passes:",
        flush=True,
    )
    replies = [alert(i) for i in range(max(args.alerts, 1000))]
    ours = per_call_us(render, replies)
    slack = per_call_us(slack_render, replies)
    # An adapter that never connects: only its conversion to discord.py objects is timed.
    settings = make_settings(url, **discord_env("http://127.0.0.1:9/api/v10", "ws://127.0.0.1:9/"))
    async with open_core(settings) as core:
        adapter = the_adapter(core, settings, DiscordAdapter)
        firsts = {id(r): render(r).first for r in replies}
        convert = per_call_us(lambda r: adapter._send(firsts[id(r)]), replies)
        embeds = per_call_us(
            lambda r: [discord.Embed.from_dict(e) for e in firsts[id(r)].embeds], replies
        )
        both = per_call_us(lambda r: adapter._send(render(r).first), replies)
        await adapter.stop()
    rows = [
        ("discord_embeds.render(reply)", ours, ""),
        (
            "slack_blocks.render(reply), for reference",
            slack,
            f"Discord ÷ Slack {ours / slack:.1f}x",
        ),
        ("adapter._send(first): Embed.from_dict + View", convert, ""),
        ("  of which Embed.from_dict alone", embeds, ""),
        ("render + _send: deliver()'s work before sending", both, ""),
    ]
    for label, us, note in rows:
        print(f"  {label:<50}{us:>8.1f} µs/call   {note}".rstrip())


async def main(args: argparse.Namespace) -> None:
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    try:
        with scratch_databases() as db:
            fake = FakeDiscord()
            await fake.start()
            try:
                env = discord_env(fake.api_url, fake.gateway_url)
                settings = make_settings(db("interactions"), **env)
                async with open_core(settings) as core:
                    await bench_interactions(core, fake, args)
            finally:
                await fake.close()
            await bench_alerts(db("alerts"), args)
            await bench_render(db("render"), args)
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


if __name__ == "__main__":
    args = common.arguments(
        __doc__,
        ("--interactions", 300, "interactions per run"),
        ("--burst", 10, "interactions pushed together"),
        alerts_per="round",
        warmup="interactions",
    )
    asyncio.run(serve_fake(args.channels) if args.serve_fake else main(args))
