"""Notifications end to end: the alert engine routes, the outbox delivers, local servers receive.

Real databases (SQLite and PostgreSQL), real HTTP to a local webhook server,
a real SMTP server (aiosmtpd), `calcifer run` as a real process for restarts.
Time is the injected clock: a 60 s backoff or a rate limit costs no waiting.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

import integrations
from calcifer_bot import http
from calcifer_bot.config import load_settings
from calcifer_bot.core import Core
from calcifer_bot.db import Database
from calcifer_bot.models import OutboxMessage
from calcifer_bot.outbox import (
    LEASE,
    MAX_ATTEMPTS,
    PER_DESTINATION,
    deliver_pending,
    enqueue,
    run_deliveries,
)
from calcifer_bot.reply import Reply, Status
from calcifer_bot.routing import Labels
from integrations.base import Reachability
from integrations.notifications import NotificationsIntegration
from tests.conftest import ChatBot, FakeClock, add_endpoint, git, observe
from tests.test_cli import running
from tests.webhook_server import Answer, WebhookServer, running_webhook_server

DISCORD = "/api/webhooks/1/discord-token"
HOOK = "/hooks/generic"
CATCH_ALL = "/hooks/catch-all"

ROUTES = """
[notifications]
default = ["catch-all"]

[notifications.destinations.ops-discord]
type = "discord-webhook"
url = "{discord}"

[notifications.destinations.hook]
type = "webhook"
url = "{hook}"
timeout = "0.5s"
{hook_extra}

[notifications.destinations.catch-all]
type = "webhook"
url = "{catch_all}"

[[notifications.routes]]
match = {{ service = "nas" }}
to = ["ops-discord", "hook"]

[[notifications.routes]]
match = {{ event = "work-*" }}
to = ["hook"]
"""


def routes_toml(server: WebhookServer, hook_extra: str = "", tail: str = "") -> str:
    return (
        ROUTES.format(
            discord=server.kind(DISCORD, "discord"),
            hook=server.kind(HOOK, "json"),
            catch_all=server.kind(CATCH_ALL, "json"),
            hook_extra=hook_extra,
        )
        + tail
    )


@pytest.fixture
async def server() -> AsyncIterator[WebhookServer]:
    async with running_webhook_server() as found:
        yield found


class Notified:
    """A core whose configuration routes to the local server, and its notification deliverer."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.bot = ChatBot(core)

    @property
    def notifier(self) -> NotificationsIntegration:
        return cast(NotificationsIntegration, integrations.get("notifications"))

    async def deliver(self) -> int:
        """One pass of the notification worker, as `calcifer run` makes them."""
        return await deliver_pending(
            self.core.outbox, lambda d: self.notifier.deliver(d, self.core.clock()), ("notify",)
        )

    async def rows(self, destination: str | None = None) -> list[OutboxMessage]:
        def read(session: Any) -> list[OutboxMessage]:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if destination:
                query = query.where(OutboxMessage.destination == destination)
            return list(session.scalars(query))

        return await self.core.db.read(read)

    async def outage(self, endpoint_id: int) -> None:
        for _ in range(3):
            await observe(self.core, endpoint_id, False)

    async def recovery(self, endpoint_id: int) -> None:
        for _ in range(2):
            await observe(self.core, endpoint_id, True)


@pytest.fixture
async def make(database: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Any]:
    """``await make(toml, **env)``: a core on the test database with that configuration."""

    async def build(text: str, **env: str) -> Notified:
        path = tmp_path / "calcifer.toml"
        path.write_text(text)
        url = database.url.render_as_string(hide_password=False)
        environ = {"CALCIFER_DATABASE_URL": url, "CALCIFER_ALERT_CHANNEL": "slack:C1", **env}
        # An empty value leaves a setting out: CALCIFER_ALERT_CHANNEL="" means no chat channel.
        settings = load_settings(path, environ={k: v for k, v in environ.items() if v})
        integrations.configure(settings)
        return Notified(Core(settings, database, clock=clock))

    yield build
    await integrations.close_all()
    await http.close()


def keys(received: list[Any]) -> list[str]:
    """The Idempotency-Key headers (a Structured Fields string: quoted)."""
    return [r.headers["Idempotency-Key"].strip('"') for r in received]


# -- routing through the alert engine --------------------------------------------------


async def test_an_outage_reaches_every_routed_destination_and_its_recovery_follows(
    make: Any, server: WebhookServer
) -> None:
    n = await make(routes_toml(server))
    nas = await add_endpoint(n.core, "nas-web", channel="slack:C1", service="nas")

    await n.outage(nas)
    assert await n.deliver() == 2

    [posted] = server.on(DISCORD)
    embed = posted.json()["embeds"][0]
    assert "nas-web is down" in embed["title"]
    assert "components" not in posted.json(), "a webhook cannot run Calcifer's buttons"
    assert posted.json()["allowed_mentions"] == {"parse": []}
    [hooked] = server.on(HOOK)
    body = hooked.json()
    assert (body["event"], body["op"], body["labels"]["service"]) == ("alert", "post", "nas")
    assert keys([hooked]) == ["alert:1@notify:hook"]
    assert server.on(CATCH_ALL) == [], "a matching route keeps the default out"
    # The chat channel still gets its own copy, as before routing existed.
    assert [r.destination for r in await n.rows()] == [
        "slack:C1",
        "notify:ops-discord",
        "notify:hook",
    ]

    await n.recovery(nas)
    await n.deliver()

    discord = server.on(DISCORD)
    edits = [r for r in server.received if r.method == "PATCH"]
    assert len(edits) == 1, "the Discord alert is edited to resolved"
    assert edits[0].path.endswith(f"/messages/{posted_id(server)}")
    assert "Resolved: nas-web was down" in edits[0].json()["embeds"][0]["title"]
    assert "nas-web is back up" in discord[-1].json()["embeds"][0]["title"]
    events = [r.json()["event"] for r in server.on(HOOK)]
    assert sorted(events) == ["alert", "recovery", "update"]


def posted_id(server: WebhookServer) -> str:
    return next(iter(server.messages))


async def test_what_no_route_matches_goes_to_the_default(make: Any, server: WebhookServer) -> None:
    n = await make(routes_toml(server))
    printer = await add_endpoint(n.core, "printer", channel="slack:C1")

    await n.outage(printer)
    await n.deliver()

    [caught] = server.on(CATCH_ALL)
    assert caught.json()["labels"]["endpoint"] == "printer"
    assert server.on(DISCORD) == [] and server.on(HOOK) == []


async def test_without_a_chat_channel_alerts_go_only_where_the_routes_say(
    make: Any, server: WebhookServer
) -> None:
    n = await make(routes_toml(server), CALCIFER_ALERT_CHANNEL="")
    nas = await add_endpoint(n.core, "nas-web", channel="", service="nas")

    await n.outage(nas)

    assert [r.destination for r in await n.rows()] == ["notify:ops-discord", "notify:hook"]


# -- delivery: retries, rate limits, dead letters ------------------------------------------


async def enqueue_alerts(n: Notified, count: int, destination: str = "notify:hook") -> None:
    def add(session: Any) -> None:
        for i in range(count):
            enqueue(
                session,
                key=f"test-alert:{i}@{destination}",
                destination=destination,
                kind="alert",
                reply=Reply(f"endpoint {i} is down", title=f"ep{i} is down", status=Status.ERROR),
                now=n.core.clock(),
                labels=Labels("alert", endpoint=f"ep{i}"),
            )

    await n.core.db.write(add)


async def test_a_500_is_retried_after_a_backoff_with_the_same_idempotency_key(
    make: Any, server: WebhookServer, clock: FakeClock
) -> None:
    n = await make(routes_toml(server))
    server.script(HOOK, Answer(500, body="upstream down"))
    await enqueue_alerts(n, 1)

    assert await n.deliver() == 0
    [row] = await n.rows()
    assert (row.status, row.attempts) == ("pending", 1)
    assert "answered HTTP 500" in (row.last_error or "")
    waits = (row.available_at - clock.now).total_seconds()
    assert 4 <= waits <= 6, "the first retry comes after about 5 s (backoff with jitter)"
    assert await n.deliver() == 0, "nothing is tried before its time"

    clock.advance(timedelta(seconds=6))
    assert await n.deliver() == 1
    first, second = server.on(HOOK)
    assert keys([first, second]) == ["test-alert:0@notify:hook"] * 2


async def test_a_429_waits_exactly_as_asked_and_holds_back_that_destination_only(
    make: Any, server: WebhookServer, clock: FakeClock
) -> None:
    n = await make(routes_toml(server))
    server.script(DISCORD, Answer(429, json={"message": "slow down", "retry_after": 7.5}))
    await enqueue_alerts(n, 3, "notify:ops-discord")
    await enqueue_alerts(n, 3, "notify:hook")

    assert await n.deliver() == 3, "the webhook's three go out; Discord's wait"

    assert len(server.on(DISCORD)) == 1, "the later messages were not tried against a 429"
    discord = await n.rows("notify:ops-discord")
    assert [r.attempts for r in discord] == [1, 0, 0]
    assert {r.available_at - clock.now for r in discord} == {timedelta(seconds=7.5)}

    clock.advance(timedelta(seconds=7.5))
    assert await n.deliver() == 3
    titles = [r.json()["embeds"][0]["title"] for r in server.on(DISCORD)[1:]]
    assert [t.removeprefix("🔴 ") for t in titles] == ["ep0 is down", "ep1 is down", "ep2 is down"]


async def test_a_destination_that_never_answers_delays_no_other(
    make: Any, server: WebhookServer
) -> None:
    n = await make(routes_toml(server))
    server.script(HOOK, Answer(delay=30))
    await enqueue_alerts(n, 1, "notify:hook")
    await enqueue_alerts(n, 1, "notify:ops-discord")

    started = asyncio.get_running_loop().time()
    assert await n.deliver() == 1
    took = asyncio.get_running_loop().time() - started

    assert took < 5, "the pass ends with the hook's 0.5 s timeout, not its 30 s"
    assert len(server.on(DISCORD)) == 1
    [hook] = await n.rows("notify:hook")
    assert hook.status == "pending" and "did not answer within 0.5 s" in (hook.last_error or "")


async def test_a_rate_limit_spaces_messages_without_counting_failures(
    make: Any, server: WebhookServer, clock: FakeClock
) -> None:
    n = await make(routes_toml(server, hook_extra='rate = "2/1m"'))
    await enqueue_alerts(n, 5)

    assert await n.deliver() == 2, "a burst of two, then one every 30 s"
    waiting = [r for r in await n.rows() if r.status == "pending"]
    assert [r.attempts for r in waiting] == [0, 0, 0]
    assert {r.available_at - clock.now for r in waiting} == {timedelta(seconds=30)}

    clock.advance(timedelta(seconds=30))
    assert await n.deliver() == 1
    clock.advance(timedelta(seconds=60))
    assert await n.deliver() == 2
    assert keys(server.on(HOOK)) == [f"test-alert:{i}@notify:hook" for i in range(5)]


async def test_a_refusal_is_dead_at_once_shown_in_status_and_retried_on_demand(
    make: Any, server: WebhookServer
) -> None:
    n = await make(routes_toml(server))
    server.script(HOOK, Answer(404, body="no such hook"))
    await enqueue_alerts(n, 1)

    await n.deliver()
    [row] = await n.rows()
    assert (row.status, row.attempts) == ("dead", 1), "a 404 will not heal by waiting"

    status = await n.bot.say("status")
    assert status.status is Status.WARNING
    dead = {f.name: f.value for f in status.fields}["Undeliverable messages"]
    assert "`notify:hook`: 1" in dead and "answered HTTP 404: no such hook" in dead
    assert HOOK not in dead, "the webhook's URL is a secret"

    retried = await n.bot.say("notify retry hook")
    assert "1 message for hook will be tried again" in retried.text
    assert await n.deliver() == 1
    assert (await n.rows())[0].status == "sent"


async def test_after_the_last_try_a_message_is_given_up(
    make: Any, server: WebhookServer, clock: FakeClock
) -> None:
    n = await make(routes_toml(server))
    server.script(HOOK, *[Answer(503)] * MAX_ATTEMPTS)
    await enqueue_alerts(n, 1)

    for _ in range(MAX_ATTEMPTS):
        await n.deliver()
        clock.advance(timedelta(hours=2))

    [row] = await n.rows()
    assert (row.status, row.attempts) == ("dead", MAX_ATTEMPTS)
    assert len(server.on(HOOK)) == MAX_ATTEMPTS


async def test_a_worker_that_died_mid_send_is_retried_with_the_same_key(
    make: Any, server: WebhookServer, clock: FakeClock
) -> None:
    n = await make(routes_toml(server))
    await enqueue_alerts(n, 1)
    [leased] = await n.core.outbox.claim(("notify",))
    await n.notifier.deliver(leased, clock.now)  # it reached the server, then the worker died

    assert await n.deliver() == 0, "the lease holds while the worker may still be alive"
    clock.advance(LEASE + timedelta(seconds=1))
    assert await n.deliver() == 1
    first, second = server.on(HOOK)
    assert keys([first, second]) == ["test-alert:0@notify:hook"] * 2, (
        "the receiver can drop the duplicate by its Idempotency-Key"
    )


async def test_the_running_worker_never_lets_a_slow_destination_hold_up_another(
    make: Any, server: WebhookServer
) -> None:
    n = await make(routes_toml(server))
    server.script(HOOK, *[Answer(delay=0.3)] * 5)
    await enqueue_alerts(n, 5, "notify:hook")  # 1.5 s of sending, one after another
    await enqueue_alerts(n, 25, "notify:ops-discord")  # more than one lease's share
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_deliveries(
            n.core.outbox,
            lambda d: n.notifier.deliver(d, n.core.clock()),
            ("notify",),
            stop=stop,
            idle=30,  # any progress below comes from the worker's own wake-ups
        )
    )
    try:
        await server.wait_for(25, DISCORD)
        assert len(server.on(HOOK)) <= 2, "Discord's 25 went out while the hook was still busy"
        await server.wait_for(5, HOOK)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 5)
    assert {r.status for r in await n.rows()} == {"sent"}


async def test_one_destination_s_backlog_leaves_room_for_the_others(
    make: Any, server: WebhookServer
) -> None:
    n = await make(routes_toml(server))
    await enqueue_alerts(n, 30, "notify:hook")
    await enqueue_alerts(n, 5, "notify:ops-discord")

    leased = await n.core.outbox.claim(("notify",))

    assert Counter(d.destination for d in leased) == {
        "notify:hook": PER_DESTINATION,
        "notify:ops-discord": 5,
    }


async def test_a_long_queue_keeps_its_lease_while_it_is_sent(
    make: Any, server: WebhookServer, clock: FakeClock
) -> None:
    n = await make(routes_toml(server))
    await enqueue_alerts(n, 3)

    leases: list[tuple[Any, Any]] = []

    async def slow(delivery: Any) -> None:
        def read(session: Any) -> Any:
            return session.get(OutboxMessage, delivery.id).leased_until

        leases.append((clock.now, await n.core.db.read(read)))
        clock.advance(LEASE * 0.6)  # each send takes most of a lease

    assert await deliver_pending(n.core.outbox, slow, ("notify",)) == 3
    # Each message was still leased when its turn came: no other worker could take it.
    assert [until > now for now, until in leases] == [True, True, True]


# -- restarts: each pending message exactly once -----------------------------------------


def test_a_restart_with_messages_pending_delivers_each_exactly_once(tmp_path: Path) -> None:
    asyncio.run(_restart_twice(tmp_path))


async def _restart_twice(tmp_path: Path) -> None:
    async with running_webhook_server() as server:
        # Each answer takes a while, so the first process is stopped mid-queue.
        server.script(HOOK, *[Answer(delay=0.15)] * 40)
        (tmp_path / "calcifer.toml").write_text(routes_toml(server))
        db = Database(f"sqlite:///{tmp_path / 'calcifer.db'}")
        await asyncio.to_thread(db.upgrade)
        settings = load_settings(tmp_path / "calcifer.toml", environ={})
        from calcifer_bot.core import utcnow

        clockless = Notified(Core(settings, db, clock=utcnow))
        await enqueue_alerts(clockless, 40)
        db.dispose()

        with running(tmp_path) as first:
            await server.wait_for(5, HOOK, timeout=20)
            first.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.proc.wait, 20)
        assert code == 0, first.log
        delivered_first = len(server.on(HOOK))
        assert delivered_first < 40, "the first process was stopped with messages pending"

        with running(tmp_path) as second:
            await server.wait_for(40, HOOK, timeout=30)
            second.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(second.proc.wait, 20)
        assert code == 0, second.log

    counted = Counter(keys(server.on(HOOK)))
    assert len(counted) == 40 and set(counted.values()) == {1}, counted
    assert "Traceback" not in first.log + second.log


def test_calcifer_run_sends_an_outage_to_a_webhook(tmp_path: Path, closed_port: int) -> None:
    """The whole way, as a user runs it: a real check fails, the engine opens an
    incident, routing picks the webhook, the worker posts it."""
    asyncio.run(_outage_through_calcifer_run(tmp_path, closed_port))


async def _outage_through_calcifer_run(tmp_path: Path, closed_port: int) -> None:
    async with running_webhook_server() as server:
        endpoint = f"""
[monitoring]
retry_interval = "1s"

[[endpoints]]
name = "nas-ssh"
type = "tcp"
target = "127.0.0.1:{closed_port}"
interval = "1s"
timeout = "1s"
failures = 1
service = "nas"
"""
        (tmp_path / "calcifer.toml").write_text(routes_toml(server) + endpoint)
        with running(tmp_path) as calcifer:
            [posted] = await server.wait_for(1, HOOK, timeout=20)
            calcifer.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(calcifer.proc.wait, 20)

    body = posted.json()
    assert (body["event"], body["labels"]["endpoint"]) == ("alert", "nas-ssh")
    assert body["title"] == "nas-ssh is down"
    assert "refused" in str(body["fields"]).lower()
    assert code == 0 and "Traceback" not in calcifer.log


# -- work items ----------------------------------------------------------------------------


async def test_work_items_notify_through_the_same_routes(
    make: Any, server: WebhookServer, repo: Path
) -> None:
    n = await make(routes_toml(server), CALCIFER_GIT_REPO=str(repo))

    created = await n.bot.say('work new "NAS backups" --category service --action new')
    assert created.ok, created.text
    await n.deliver()

    [hooked] = server.on(HOOK)
    assert hooked.json()["event"] == "work-new"
    assert "New work item 1: NAS backups" in hooked.json()["title"]
    assert git(repo, "branch", "--list", "service/new/*")


# -- commands ------------------------------------------------------------------------------


async def test_notify_test_sends_now_and_says_how_each_destination_fared(
    make: Any, server: WebhookServer, closed_port: int
) -> None:
    dead_hook = f"http://127.0.0.1:{closed_port}/hooks/SECRETTOKEN"
    tail = f"""
[notifications.destinations.broken]
type = "webhook"
url = "{dead_hook}"
"""
    n = await make(routes_toml(server, tail=tail))

    reply = await n.bot.say("notify test")

    assert reply.status is Status.ERROR
    assert reply.text == "1 of 4 could not be reached."
    shown = {f.name: f.value for f in reply.fields}
    assert shown["ops-discord"].startswith("✓ delivered in")
    assert shown["broken"].startswith("✗ Webhook broken:")
    assert "SECRETTOKEN" not in str(reply)
    [test] = server.on(DISCORD)
    assert "Test notification from Calcifer" in test.json()["embeds"][0]["title"]
    assert await n.rows() == [], "a test is sent at once, not queued"

    one = await n.bot.say("notify test hook")
    assert one.ok and list(shown) != [f.name for f in one.fields] == ["hook"]
    unknown = await n.bot.say("notify test nowhere")
    assert "there is no destination named 'nowhere'" in unknown.text


async def test_config_check_reaches_each_destination_and_sends_nothing(
    make: Any, server: WebhookServer, closed_port: int
) -> None:
    n = await make(routes_toml(server))
    assert str(await integrations.check("notifications")) == "ok: 3 destinations"

    tail = f"""
[notifications.destinations.broken]
type = "webhook"
url = "http://127.0.0.1:{closed_port}/hooks/SECRETTOKEN"
"""
    n = await make(routes_toml(server, tail=tail))
    found = await integrations.check("notifications")
    assert found.failing and found.detail.startswith("broken: cannot connect")
    assert "SECRETTOKEN" not in found.detail
    assert {r.method for r in server.received} <= {"GET", "HEAD"}, "nothing was posted"
    reply = await n.bot.say("integrations")
    assert "broken: cannot connect" in {f.name: f.value for f in reply.fields}["Notifications"]


async def test_a_chat_channel_destination_is_tested_through_the_outbox(
    make: Any, server: WebhookServer
) -> None:
    tail = """
[notifications.destinations.lab]
type = "slack"
channel = "C0LAB"
"""
    n = await make(routes_toml(server, tail=tail), SLACK_BOT_TOKEN="xoxb-test")

    reply = await n.bot.say("notify test lab")

    assert {f.name: f.value for f in reply.fields} == {"lab": "queued for `slack:C0LAB`"}
    [row] = await n.rows()
    assert (row.destination, row.kind) == ("slack:C0LAB", "test")


async def test_notify_test_needs_an_operator(make: Any, server: WebhookServer) -> None:
    n = await make(routes_toml(server))
    reply = await n.bot.say("notify test", user="slack:UVIEWER")
    assert reply.title == "Not allowed" and server.received == []


async def test_notify_routes_shows_what_goes_where_without_secrets(
    make: Any, server: WebhookServer
) -> None:
    n = await make(routes_toml(server, hook_extra='rate = "2/1m"'))
    await add_endpoint(n.core, "nas-web", channel="slack:C1", service="nas", tags=("prod",))

    table = await n.bot.say("notify routes")
    shown = {f.name: f.value for f in table.fields}
    assert shown["ops-discord"].startswith("Discord webhook on 127.0.0.1")
    assert "at most 2/1m" in shown["hook"]
    assert shown["Rules"].splitlines() == [
        "1. service=nas → ops-discord, hook",
        "2. event=work-* → hook",
        "otherwise → catch-all",
    ]
    assert "discord-token" not in str(table)

    path = await n.bot.say("notify routes nas-web")
    lines = path.fields[0].value.splitlines()
    assert lines == [
        "• chat channel `slack:C1`",
        "• ops-discord (rule 1: service=nas)",
        "• hook (rule 1: service=nas)",
    ]
    assert "tags prod" in path.text and "severity critical" in path.text


async def test_without_destinations_notify_routes_says_alerts_stay_in_chat(
    make: Any,
) -> None:
    n = await make("")
    reply = await n.bot.say("notify routes")
    assert "No notification destinations are configured" in reply.text
    assert "no notification destinations are configured" in (await n.bot.say("notify test")).text


# -- e-mail, threaded ------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox(closed_port: int) -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    # aiosmtpd connects to its own port to see it started, so it needs a real number.
    controller = Controller(handler, hostname="127.0.0.1", port=closed_port)
    controller.start()
    try:
        yield handler, closed_port
    finally:
        controller.stop()


async def test_the_recovery_mail_is_threaded_under_the_alert_mail(
    make: Any, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    n = await make(
        f"""
[notifications]
default = ["oncall"]

[notifications.destinations.oncall]
type = "email"
to = ["oncall@example.org"]
smtp_host = "127.0.0.1"
smtp_port = {port}
security = "none"
""",
        CALCIFER_ALERT_CHANNEL="",
    )
    nas = await add_endpoint(n.core, "nas-web", channel="", service="nas")

    await n.outage(nas)
    await n.deliver()
    await n.recovery(nas)
    await n.deliver()

    alert, recovery = handler.mails
    assert "nas-web is down" in alert["Subject"]
    assert "nas-web is back up" in recovery["Subject"]
    assert recovery["In-Reply-To"] == alert["Message-ID"]
    assert len(handler.mails) == 2, "a mail cannot be edited: no mail for the update"
    # Without a chat channel nothing else was queued: no edit waits for a console.
    assert {(r.destination, r.status) for r in await n.rows()} == {("notify:oncall", "sent")}


# -- an optional extra that is not installed ---------------------------------------------


async def test_an_apprise_destination_without_apprise_is_disabled_and_says_so(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Uninstalling a package is not possible inside the test run: hiding it from
    # the import system is what a missing extra looks like to Calcifer.
    monkeypatch.setitem(sys.modules, "apprise", None)
    n = await make("""
[notifications.destinations.phone]
type = "apprise"
url = "json://127.0.0.1:9/x"
""")
    await enqueue_alerts(n, 1, "notify:phone")

    await n.deliver()

    [row] = await n.rows()
    assert row.status == "dead"
    assert row.last_error == "phone is disabled: install calcifer[notify]"
    check = await n.notifier.check_destination("phone")
    assert check.state is Reachability.DISABLED
