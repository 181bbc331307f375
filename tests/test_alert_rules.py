"""Alert rules as a user sees them in chat: flapping, dependencies, grouping,
quorums, maintenance windows, mutes, restarts and the outbox's ordering.

Every test drives the real engine on a real database with a fake clock and
looks at what would be posted: :meth:`Bot.deliver` plays a chat adapter that
sends everything the outbox hands it, so threads and edits carry the message
they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from calcifer_bot.db import Database
from calcifer_bot.endpoints import Definition, build
from calcifer_bot.engine import Engine, Observation, maintenance_active
from calcifer_bot.models import CheckResult, Incident, MaintenanceWindow, OutboxMessage
from calcifer_bot.outbox import MAX_ATTEMPTS, Delivery, Outbox
from calcifer_bot.reply import MessageRef
from tests.conftest import FakeClock, make_settings

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Sent:
    """One message as the chat adapter received it."""

    destination: str
    kind: str
    op: str
    ref: str | None
    title: str | None
    text: str
    fields: dict[str, str]
    target: MessageRef | None  # for edits and thread replies: the message they refer to
    posted: MessageRef | None  # for posts: where it landed


class Bot:
    """The engine and outbox of one Calcifer process, on a shared database."""

    def __init__(self, database: Database, clock: FakeClock, ids: dict[str, int] | None = None):
        url = database.url.render_as_string(hide_password=False)
        self.db, self.clock = database, clock
        self.settings = make_settings(url)
        self.engine = Engine(self.settings, database, clock)
        self.outbox = Outbox(database, clock)
        self.ids: dict[str, int] = ids if ids is not None else {}

    def restarted(self) -> Bot:
        """A new process: new database connections, engine and outbox, nothing in memory."""
        return Bot(
            Database(self.db.url.render_as_string(hide_password=False)), self.clock, self.ids
        )

    async def add(self, name: str, **fields: Any) -> int:
        """An endpoint that goes down on 1 failure and up on 1 success, alerting to slack:C1."""
        d = Definition(
            name=name,
            type="tcp",
            target="10.0.0.1",
            port=443,
            **{"failures": 1, "successes": 1, "channel": "slack:C1", **fields},
        )

        def run(session: Any) -> int:
            ep = build(d, session, self.clock(), source="chat")
            session.add(ep)
            session.flush()
            return ep.id

        self.ids[name] = await self.db.write(run)
        return self.ids[name]

    def result(self, name: str, ok: bool) -> Observation:
        """A check result now: up in 12 ms, or the connection refused."""
        error = None if ok else "refused"
        return Observation(self.ids[name], self.clock(), ok, 12.0 if ok else None, error)

    async def check(self, *names: str, ok: bool, after: timedelta = MINUTE) -> None:
        """One result for each endpoint at the same moment, then move the clock on."""
        await self.engine.apply([self.result(n, ok) for n in names])
        self.clock.advance(after)

    async def checks(self, name: str, results: str, after: timedelta = MINUTE) -> None:
        """A run of results for one endpoint, "1" up and "0" down, ``after`` apart.

        They reach the engine in one batch, as a sweep hands them over; the
        engine steps through them one by one.
        """
        batch = []
        for r in results:
            batch.append(self.result(name, r == "1"))
            self.clock.advance(after)
        await self.engine.apply(batch)

    async def deliver(self) -> list[Sent]:
        """Send whatever the outbox hands out until it has nothing more, as an adapter would."""
        out: list[Sent] = []
        while batch := await self.outbox.claim([""]):
            for d in batch:
                posted = MessageRef(d.platform, d.channel, f"m{d.id}") if d.op == "post" else None
                await self.outbox.sent(d, posted)
                out.append(sent(d, posted))
        return out

    async def incidents(self, name: str) -> list[Incident]:
        return await self.db.read(
            lambda s: list(
                s.scalars(
                    select(Incident)
                    .where(Incident.endpoint_id == self.ids[name])
                    .order_by(Incident.id)
                )
            )
        )

    async def rows(self) -> list[OutboxMessage]:
        return await self.db.read(
            lambda s: list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        )

    async def window(
        self, name: str, starts_at: datetime, minutes: float, every: str | None = None
    ) -> None:
        now = self.clock()

        def run(session: Any) -> None:
            session.add(
                MaintenanceWindow(
                    endpoint_id=self.ids[name],
                    starts_at=starts_at,
                    duration_s=minutes * 60,
                    every=every,
                    created_by="slack:UOPS",
                    created_at=now,
                )
            )

        await self.db.write(run)


def sent(d: Delivery, posted: MessageRef | None) -> Sent:
    fields = {f.name: f.value for f in d.reply.fields}
    return Sent(
        d.destination, d.kind, d.op, d.ref, d.reply.title, d.reply.text, fields, d.target, posted
    )


def posts(messages: list[Sent], kind: str | None = None) -> list[Sent]:
    return [m for m in messages if m.op == "post" and kind in (None, m.kind)]


def replies(messages: list[Sent], kind: str | None = None) -> list[Sent]:
    return [m for m in messages if m.op == "reply" and kind in (None, m.kind)]


def updates(messages: list[Sent], ref: str) -> list[Sent]:
    return [m for m in messages if m.op == "update" and m.ref == ref]


def titles(messages: list[Sent]) -> list[str | None]:
    return [m.title for m in messages]


@pytest.fixture
async def bot(database: Database, clock: FakeClock) -> Bot:
    return Bot(database, clock)


# -- flapping -----------------------------------------------------------------


async def flap(bot: Bot, name: str = "wobbly") -> list[Sent]:
    """Ten alternating results (up first): enough to be flapping; returns what went out."""
    await bot.add(name)
    await bot.checks(name, "1010101010")
    return await bot.deliver()


async def test_flapping_endpoint_is_reported_once_and_holds_its_alerts(bot: Bot) -> None:
    first = await flap(bot)
    flaps = posts(first, "flapping")
    assert len(flaps) == 1
    assert flaps[0].ref is not None and flaps[0].ref.startswith("flap:")
    assert flaps[0].title == "wobbly is flapping"
    assert "history is kept" in flaps[0].text

    await bot.checks("wobbly", "1010101010")  # still flapping

    assert await bot.deliver() == []
    held = [i for i in await bot.incidents("wobbly") if i.suppressed == "flapping"]
    assert len(held) == 6  # every outage since it started flapping is still recorded
    assert all(i.alert_ref is None for i in held)
    assert all(i.resolved_at is not None for i in held[:-1])
    results = await bot.db.read(lambda s: s.scalar(select(func.count()).select_from(CheckResult)))
    assert results == 20


async def test_flapping_endpoint_that_settles_down_says_stable_in_thread_then_alerts(
    bot: Bot,
) -> None:
    flap_post = posts(await flap(bot), "flapping")[0]

    await bot.checks("wobbly", "0" * 10)
    assert await bot.deliver() == []  # ten steady results are not settled yet

    await bot.checks("wobbly", "0" * 10)
    settled = await bot.deliver()
    stable = replies(settled, "flapping")
    assert titles(stable) == ["wobbly is stable again"]
    assert stable[0].text == "wobbly has settled and is down."
    assert stable[0].ref == flap_post.ref and stable[0].target == flap_post.posted
    assert titles(updates(settled, flap_post.ref or "")) == ["wobbly was flapping"]
    alert = posts(settled, "alert")
    assert titles(alert) == ["wobbly is down"]
    open_ = (await bot.incidents("wobbly"))[-1]
    assert open_.resolved_at is None and open_.suppressed is None
    assert alert[0].ref == open_.alert_ref == f"alert:{open_.id}"


async def test_flapping_endpoint_that_settles_up_says_stable_and_posts_no_alert(
    bot: Bot,
) -> None:
    flap_post = posts(await flap(bot), "flapping")[0]

    await bot.checks("wobbly", "1" * 20)

    settled = await bot.deliver()
    assert [(m.op, m.title) for m in settled] == [
        ("reply", "wobbly is stable again"),
        ("update", "wobbly was flapping"),
    ]
    assert settled[0].text == "wobbly has settled and is up."
    assert settled[0].target == flap_post.posted


async def test_one_clean_outage_is_not_flapping(bot: Bot) -> None:
    await bot.add("solid")
    await bot.checks("solid", "1" * 10 + "0" * 5 + "1" * 10)

    out = await bot.deliver()
    assert posts(out, "flapping") == []
    assert titles(posts(out)) == ["solid is down"]
    assert titles(replies(out)) == ["solid is back up"]


async def test_flapping_endpoint_that_settles_down_while_muted_stays_quiet(bot: Bot) -> None:
    await flap(bot)  # ends on a failure: the open outage is held for flapping
    await bot.engine.mute("wobbly", bot.clock() + timedelta(hours=2), "noisy", "slack:UOPS")

    await bot.checks("wobbly", "0" * 20)  # settles while still muted

    out = await bot.deliver()
    assert posts(out, "alert") == []


async def test_muted_endpoint_that_flaps_posts_nothing(bot: Bot) -> None:
    await bot.add("wobbly")
    await bot.check("wobbly", ok=True)
    await bot.engine.mute("wobbly", bot.clock() + timedelta(hours=1), "deploy", "slack:UOPS")

    await bot.checks("wobbly", "010101010")

    assert await bot.deliver() == []


# -- dependencies ---------------------------------------------------------------


async def network(bot: Bot, children: int = 12, **child_fields: Any) -> list[str]:
    await bot.add("router")
    names = [f"host-{n:02d}" for n in range(1, children + 1)]
    for name in names:
        await bot.add(name, depends_on="router", **child_fields)
    await bot.check("router", *names, ok=True)
    return names


async def test_children_of_a_down_parent_fold_into_its_one_alert(bot: Bot) -> None:
    hosts = await network(bot)

    await bot.check("router", ok=False)
    await bot.check(*hosts, ok=False)

    out = await bot.deliver()
    [alert] = posts(out)
    assert alert.title == "router is down"
    [router] = await bot.incidents("router")
    assert alert.ref == f"alert:{router.id}"
    last = updates(out, alert.ref)[-1]
    assert last.target == alert.posted
    assert last.text.startswith("router down: 13 endpoints affected.")
    assert last.fields["12 dependent endpoints affected"] == (", ".join(hosts[:10]) + " and 2 more")
    for host in hosts:
        [child] = await bot.incidents(host)
        assert (child.parent_id, child.suppressed, child.alert_ref) == (
            router.id,
            "parent",
            alert.ref,
        )
    assert {m.ref for m in out} == {alert.ref}  # the children posted nothing of their own


async def test_recovering_children_update_the_parents_alert(bot: Bot) -> None:
    hosts = await network(bot)
    await bot.check("router", ok=False)
    await bot.check(*hosts, ok=False)
    [alert] = posts(await bot.deliver())

    await bot.check(*hosts[:4], ok=True)

    out = await bot.deliver()
    assert replies(out) == []  # folded children have no thread of their own to answer in
    assert {(m.op, m.ref) for m in out} == {("update", alert.ref)}
    assert updates(out, alert.ref or "")[-1].fields["8 dependent endpoints affected"] == ", ".join(
        hosts[4:]
    )


async def test_child_down_before_its_parent_keeps_its_alert_and_is_listed_in_the_parents(
    bot: Bot,
) -> None:
    [host] = await network(bot, children=1)
    await bot.check(host, ok=False, after=timedelta(minutes=2))  # well outside the group window
    await bot.check("router", ok=False)

    out = await bot.deliver()
    assert titles(posts(out)) == ["host-01 is down", "router is down"]
    child_alert, router_alert = posts(out)
    [router] = await bot.incidents("router")
    [child] = await bot.incidents(host)
    assert child.parent_id == router.id and child.alert_ref == child_alert.ref
    assert router_alert.text.startswith("router down: 2 endpoints affected.")
    assert router_alert.fields["1 dependent endpoint affected"] == "host-01"

    await bot.check(host, ok=True)

    out = await bot.deliver()
    [recovery] = replies(out)
    assert (recovery.title, recovery.target) == ("host-01 is back up", child_alert.posted)
    assert titles(updates(out, child_alert.ref or "")) == ["Resolved: host-01 was down for 3m"]
    router_now = updates(out, router_alert.ref or "")
    assert len(router_now) == 1
    assert "dependent endpoints affected" not in " ".join(router_now[0].fields)
    assert "endpoints affected" not in router_now[0].text


async def test_parent_down_right_after_its_child_still_posts_its_own_alert(bot: Bot) -> None:
    [host] = await network(bot, children=1)
    await bot.check(host, ok=False, after=timedelta(seconds=10))
    await bot.check("router", ok=False)

    out = await bot.deliver()
    assert titles(posts(out)) == ["host-01 is down", "router is down"]


async def test_children_in_another_channel_still_update_the_parents_alert(bot: Bot) -> None:
    hosts = await network(bot, children=3, channel="slack:C2")

    await bot.check("router", ok=False)
    await bot.check(*hosts, ok=False)

    out = await bot.deliver()
    [alert] = posts(out)
    assert alert.destination == "slack:C1"
    edits = updates(out, alert.ref or "")
    assert edits and edits[-1].fields.get("3 dependent endpoints affected")


async def test_child_still_down_after_its_parent_recovers_gets_its_own_alert(bot: Bot) -> None:
    [host] = await network(bot, children=1)
    await bot.check("router", ok=False)
    await bot.check(host, ok=False)
    await bot.deliver()

    await bot.check("router", ok=True)
    await bot.check(host, ok=False, after=timedelta(hours=1))  # still down an hour later
    await bot.engine.housekeeping()

    assert titles(posts(await bot.deliver(), "alert")) == ["host-01 is down"]


# -- grouping window ------------------------------------------------------------


async def test_downs_within_the_group_window_share_one_message(bot: Bot) -> None:
    for n in range(1, 5):
        await bot.add(f"web-{n}")
    await bot.check("web-1", "web-2", "web-3", "web-4", ok=True)

    for n in (1, 2, 3):  # 0 s, 10 s, 20 s
        await bot.check(f"web-{n}", ok=False, after=timedelta(seconds=10))

    out = await bot.deliver()
    [shared] = posts(out)
    assert shared.title == "web-1 is down"
    edits = updates(out, shared.ref or "")
    assert titles(edits) == ["2 of 2 endpoints down", "3 of 3 endpoints down"]
    assert all(e.target == shared.posted for e in edits)
    assert [line[:7] for line in edits[-1].text.splitlines()[1:]] == [
        "✗ web-1",
        "✗ web-2",
        "✗ web-3",
    ]

    bot.clock.advance(timedelta(seconds=21))  # 31 s after the last of them
    await bot.check("web-4", ok=False)

    out = await bot.deliver()
    assert [(m.op, m.title) for m in out] == [("post", "web-4 is down")]
    assert out[0].ref != shared.ref


async def test_recovery_in_a_shared_message_is_threaded_and_updates_the_count(bot: Bot) -> None:
    for n in (1, 2, 3):
        await bot.add(f"web-{n}")
    await bot.check("web-1", "web-2", "web-3", ok=True)
    for n in (1, 2, 3):
        await bot.check(f"web-{n}", ok=False, after=timedelta(seconds=10))
    [shared] = posts(await bot.deliver())

    await bot.check("web-2", ok=True)

    out = await bot.deliver()
    assert [(m.op, m.title, m.target) for m in out] == [
        ("reply", "web-2 is back up", shared.posted),
        ("update", "2 of 3 endpoints down", shared.posted),
    ]


async def test_downs_in_different_channels_are_not_grouped(bot: Bot) -> None:
    await bot.add("a", channel="slack:C1")
    await bot.add("b", channel="slack:C2")
    await bot.check("a", "b", ok=True)

    await bot.check("a", ok=False, after=timedelta(seconds=5))
    await bot.check("b", ok=False)

    out = await bot.deliver()
    assert [(m.op, m.destination, m.title) for m in out] == [
        ("post", "slack:C1", "a is down"),
        ("post", "slack:C2", "b is down"),
    ]


# -- quorum ---------------------------------------------------------------------


async def test_group_with_a_quorum_alerts_once_when_enough_members_are_down(bot: Bot) -> None:
    for n in (1, 2, 3):
        await bot.add(f"web-{n}", group="web", quorum=2)
    await bot.check("web-1", "web-2", "web-3", ok=True)

    await bot.check("web-1", ok=False)
    assert await bot.deliver() == []
    [held] = await bot.incidents("web-1")
    assert (held.suppressed, held.alert_ref) == ("quorum", None)

    await bot.check("web-2", ok=False)
    [alert] = await bot.deliver()
    assert (alert.op, alert.title) == ("post", "Group web: 2 of 3 down")
    assert alert.ref is not None and alert.ref.startswith("group:web:")
    assert [line[:7] for line in alert.text.splitlines()[1:]] == ["✗ web-1", "✗ web-2"]

    await bot.check("web-3", ok=False)
    [edit] = await bot.deliver()
    assert (edit.op, edit.ref, edit.title, edit.target) == (
        "update",
        alert.ref,
        "Group web: 3 of 3 down",
        alert.posted,
    )

    await bot.check("web-3", ok=True)  # 2 still down: the group is still down
    [edit] = await bot.deliver()
    assert (edit.op, edit.title) == ("update", "Group web: 2 of 3 down")

    await bot.check("web-2", ok=True)  # below the quorum
    out = await bot.deliver()
    assert [(m.op, m.title, m.target) for m in out] == [
        ("reply", "Group web recovered", alert.posted),
        ("update", "Resolved: group web recovered", alert.posted),
    ]
    assert out[0].text.startswith("Group web is back: 1 down, alerts at 2")


# -- maintenance windows --------------------------------------------------------


async def test_outage_in_maintenance_is_held_then_alerted_when_the_window_ends(bot: Bot) -> None:
    await bot.add("db")
    await bot.check("db", ok=True)
    await bot.window("db", bot.clock() - 5 * MINUTE, minutes=30)

    await bot.checks("db", "000")

    assert await bot.deliver() == []
    [incident] = await bot.incidents("db")
    assert (incident.suppressed, incident.alert_ref) == ("maintenance", None)

    bot.clock.advance(30 * MINUTE)
    await bot.engine.housekeeping()

    out = await bot.deliver()
    assert [(m.op, m.kind, m.title or m.text) for m in out] == [
        ("post", "info", "Maintenance of db is over; alerts are back on."),
        ("post", "alert", "db is down"),
    ]
    assert await bot.db.read(lambda s: s.scalars(select(MaintenanceWindow)).all()) == []


async def test_maintenance_that_ends_with_the_endpoint_up_only_announces_the_end(
    bot: Bot,
) -> None:
    await bot.add("db")
    await bot.check("db", ok=True)
    await bot.window("db", bot.clock(), minutes=30)
    await bot.checks("db", "0001")  # down and back inside the window

    bot.clock.advance(30 * MINUTE)
    await bot.engine.housekeeping()

    out = await bot.deliver()
    assert [m.text for m in out] == ["Maintenance of db is over; alerts are back on."]
    [incident] = await bot.incidents("db")
    assert incident.resolved_at is not None and incident.suppressed == "maintenance"


async def test_daily_maintenance_window_holds_alerts_each_night_and_announces_each_end_once(
    database: Database,
) -> None:
    clock = FakeClock(datetime(2026, 12, 3, 2, 0, tzinfo=UTC))
    bot = Bot(database, clock)
    await bot.add("backup")
    await bot.check("backup", ok=True)
    tonight = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    await bot.window("backup", tonight, minutes=30, every="day")

    for night in (tonight, tonight + timedelta(days=1)):
        clock.now = night + 10 * MINUTE
        await bot.checks("backup", "0001")  # 03:10 – 03:13
        clock.now = night + 31 * MINUTE
        await bot.engine.housekeeping()
        await bot.engine.housekeeping()
        assert [m.text for m in await bot.deliver()] == [
            "Maintenance of backup is over; alerts are back on."
        ]
        await bot.checks("backup", "1" * 20)  # the quiet checks of the rest of the night

    assert [i.suppressed for i in await bot.incidents("backup")] == ["maintenance"] * 2
    [window] = await bot.db.read(lambda s: s.scalars(select(MaintenanceWindow)).all())
    assert maintenance_active(window, tonight + timedelta(days=1, minutes=15))
    assert not maintenance_active(window, tonight + timedelta(days=1, hours=1))

    clock.now = tonight + timedelta(days=1, hours=1)  # 04:00 the second day
    await bot.check("backup", ok=False)
    assert titles(posts(await bot.deliver())) == ["backup is down"]


# -- mutes ----------------------------------------------------------------------


async def test_outage_while_muted_is_alerted_when_the_mute_ends(bot: Bot) -> None:
    await bot.add("api")
    await bot.check("api", ok=True)
    await bot.engine.mute("api", bot.clock() + timedelta(hours=1), "deploy", "slack:UOPS")

    await bot.checks("api", "000")

    assert await bot.deliver() == []
    [incident] = await bot.incidents("api")
    assert incident.suppressed == "muted"

    bot.clock.advance(timedelta(hours=1))
    await bot.engine.housekeeping()
    await bot.engine.housekeeping()

    out = await bot.deliver()
    assert [(m.kind, m.title or m.text) for m in out] == [
        ("info", "The mute of api has ended; alerts are back on."),
        ("alert", "api is down"),
    ]


async def test_outage_that_recovers_while_muted_posts_nothing(bot: Bot) -> None:
    await bot.add("api")
    await bot.check("api", ok=True)
    await bot.engine.mute("api", bot.clock() + timedelta(hours=1), None, "slack:UOPS")

    await bot.checks("api", "0001")

    assert await bot.deliver() == []
    bot.clock.advance(timedelta(hours=1))
    await bot.engine.housekeeping()
    assert [m.text for m in await bot.deliver()] == [
        "The mute of api has ended; alerts are back on."
    ]


async def test_unmute_releases_a_held_outage_at_once(bot: Bot) -> None:
    await bot.add("api")
    await bot.check("api", ok=True)
    await bot.engine.mute("api", bot.clock() + timedelta(hours=1), None, "slack:UOPS")
    await bot.checks("api", "00")

    await bot.engine.unmute("api", "slack:UOPS")

    assert titles(await bot.deliver()) == ["api is down"]
    bot.clock.advance(timedelta(hours=2))  # the original mute would have ended by now
    await bot.engine.housekeeping()
    assert await bot.deliver() == []


# -- restarts -------------------------------------------------------------------


async def test_restart_mid_outage_neither_repeats_the_alert_nor_the_recovery(bot: Bot) -> None:
    await bot.add("api", failures=3, successes=2)
    await bot.checks("api", "1000")
    [alert] = posts(await bot.deliver())

    after = bot.restarted()
    try:
        await after.checks("api", "00000")
        assert await after.deliver() == []
        await after.checks("api", "1")
        again = after.restarted()  # and once more, between the two successes
        try:
            await again.checks("api", "1")
            out = await again.deliver()
        finally:
            again.db.dispose()
    finally:
        after.db.dispose()

    [incident] = await bot.incidents("api")
    assert incident.resolved_at is not None
    assert [(m.op, m.title, m.target) for m in out] == [
        ("reply", "api is back up", alert.posted),
        ("update", "Resolved: api was down for 8m", alert.posted),
    ]


async def test_alert_enqueued_before_a_restart_is_delivered_once_after_it(bot: Bot) -> None:
    await bot.add("api")
    await bot.checks("api", "10")

    after = bot.restarted()
    try:
        [delivery] = await after.outbox.claim([""])
        assert (delivery.op, delivery.reply.title) == ("post", "api is down")
        await after.outbox.sent(delivery, MessageRef("slack", "C1", "1.1"))
        assert await after.outbox.claim([""]) == []
        assert await bot.outbox.claim([""]) == []
    finally:
        after.db.dispose()


async def test_alert_claimed_by_a_process_that_died_is_sent_once_when_its_lease_ends(
    bot: Bot,
) -> None:
    await bot.add("api")
    await bot.checks("api", "10")
    [_lost] = await bot.outbox.claim([""])  # ... and the process dies before sending it

    after = bot.restarted()
    try:
        assert await after.outbox.claim([""]) == []  # still leased: no double send
        bot.clock.advance(timedelta(seconds=61))
        [delivery] = await after.outbox.claim([""])
        assert delivery.reply.title == "api is down"
        await after.outbox.sent(delivery, MessageRef("slack", "C1", "1.1"))
        bot.clock.advance(timedelta(minutes=5))
        assert await after.outbox.claim([""]) == []
    finally:
        after.db.dispose()


# -- outbox ordering ------------------------------------------------------------


async def outage_and_recovery(bot: Bot) -> None:
    """An alert post, then its recovery reply and the edit to resolved, all pending."""
    await bot.add("api")
    await bot.checks("api", "101")


async def test_thread_reply_waits_until_its_alert_is_posted(bot: Bot) -> None:
    await outage_and_recovery(bot)

    [post] = await bot.outbox.claim([""])
    assert (post.op, post.reply.title) == ("post", "api is down")
    assert await bot.outbox.claim([""]) == []

    where = MessageRef("slack", "C1", "1733227200.000100")
    await bot.outbox.sent(post, where)
    reply, edit = await bot.outbox.claim([""])

    assert (reply.op, reply.ref, reply.reply.title, reply.target) == (
        "reply",
        post.ref,
        "api is back up",
        where,
    )
    assert (edit.op, edit.ref, edit.target) == ("update", post.ref, where)


async def test_failed_post_is_retried_later_and_its_reply_keeps_waiting(bot: Bot) -> None:
    await outage_and_recovery(bot)
    [post] = await bot.outbox.claim([""])

    await bot.outbox.failed(post, "boom")

    row = next(r for r in await bot.rows() if r.id == post.id)
    assert row.status == "pending" and row.last_error == "boom"
    assert row.available_at > bot.clock()
    assert await bot.outbox.claim([""]) == []  # neither the post nor what waits for it
    bot.clock.now = row.available_at
    [again] = await bot.outbox.claim([""])
    assert (again.id, again.attempts) == (post.id, 1)


async def test_post_that_failed_for_good_is_dead_and_its_reply_goes_out_on_its_own(
    bot: Bot,
) -> None:
    await outage_and_recovery(bot)

    for attempt in range(MAX_ATTEMPTS):
        [post] = await bot.outbox.claim([""])
        assert (post.op, post.attempts) == ("post", attempt)
        await bot.outbox.failed(post, "boom")
        bot.clock.advance(timedelta(hours=2))

    dead = next(r for r in await bot.rows() if r.id == post.id)
    assert (dead.status, dead.attempts) == ("dead", MAX_ATTEMPTS)
    out = await bot.deliver()
    assert [(m.op, m.ref, m.target, m.title) for m in out] == [
        ("post", None, None, "api is back up")  # the edit of a message never posted is dropped
    ]
    assert await bot.outbox.pending() == 0
