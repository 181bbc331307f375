"""The alert engine's state machine on a real database and a hand-moved clock.

Results are fed straight into ``Engine.apply`` — the checks themselves are
tested against real servers in test_checks.py — and the assertions are on
what would reach the channel: the outbox.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import integrations
from calcifer_bot.db import Database
from calcifer_bot.endpoints import Definition, build
from calcifer_bot.engine import Engine, Observation
from calcifer_bot.errors import UsageError
from calcifer_bot.models import Endpoint, Incident, OutboxMessage, WorkItem
from calcifer_bot.reply import Reply
from tests.conftest import FakeClock, make_settings


def engine_for(database: Database, clock: FakeClock, **env: str) -> Engine:
    url = database.url.render_as_string(hide_password=False)
    settings = make_settings(url, **env)
    integrations.configure(settings)  # the git context provider asks git_manager
    return Engine(settings, database, clock)


async def add(database: Database, clock: FakeClock, **fields: Any) -> int:
    fields.setdefault("type", "tcp")
    fields.setdefault("target", "10.0.0.1:22")

    def run(session: Any) -> int:
        ep = build(Definition(**fields), session, clock(), source="chat")
        session.add(ep)
        session.flush()
        return ep.id

    return await database.write(run)


async def feed(engine: Engine, clock: FakeClock, endpoint_id: int, *oks: bool) -> list[float]:
    """One result per value, each after the delay the engine asked for."""
    delays = []
    for ok in oks:
        obs = Observation(
            endpoint_id,
            clock(),
            ok,
            12.0 if ok else None,
            None if ok else "connection refused",
        )
        delay = (await engine.apply([obs]))[endpoint_id]
        delays.append(delay)
        clock.advance(timedelta(seconds=delay))
    return delays


async def outbox(database: Database) -> list[tuple[str, str, str | None, Reply]]:
    """(kind, op, ref, reply) of every message, oldest first."""

    def rows(session: Any) -> list[tuple[str, str, str | None, Reply]]:
        found = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [
            (m.kind, m.payload["op"], m.payload["ref"], Reply.from_dict(m.payload["reply"]))
            for m in found
        ]

    return await database.read(rows)


async def incidents(database: Database) -> list[Incident]:
    return await database.read(lambda s: list(s.scalars(select(Incident).order_by(Incident.id))))


async def test_down_only_after_the_third_consecutive_failure(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas")

    await feed(engine, clock, nas, True, False, False, True, False, False)
    assert await outbox(database) == []  # two failures, a success, two failures: never three

    await feed(engine, clock, nas, False)
    [(kind, op, _ref, reply)] = await outbox(database)
    assert (kind, op) == ("alert", "post")
    assert reply.title == "nas is down"


async def test_pending_changes_are_rechecked_at_the_retry_interval(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas", interval=timedelta(minutes=5))

    delays = await feed(engine, clock, nas, True, False, False, False, False, True, True, True)

    # up: 5 min; failing: 10 s until down; down: 5 min; recovering: 10 s until up.
    assert delays == [300, 10, 10, 300, 300, 10, 300, 300]


@pytest.mark.parametrize("phase", [0, 15, 30, 59])
async def test_defaults_detect_a_hard_outage_of_a_60s_endpoint_well_under_two_minutes(
    database: Database, clock: FakeClock, phase: int
) -> None:
    engine = engine_for(database, clock)
    web = await add(database, clock, name="web")
    await feed(engine, clock, web, True)  # the clock is now at the next check
    outage = clock() - timedelta(seconds=60 - phase)  # it broke `phase` s after the last check

    while not await outbox(database):
        await feed(engine, clock, web, False)

    [incident] = await incidents(database)
    assert incident.detected_at is not None
    assert incident.detected_at - outage <= timedelta(seconds=80)


async def test_one_incident_and_one_alert_per_outage_then_recovery_in_the_thread(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas")
    await feed(engine, clock, nas, True)
    first_failure = clock()

    await feed(engine, clock, nas, *[False] * 20)
    assert len(await outbox(database)) == 1
    recovered_at = clock()
    await feed(engine, clock, nas, True, True)

    [incident] = await incidents(database)
    assert incident.started_at == first_failure
    assert incident.resolved_at == recovered_at  # the first good check, not the second
    messages = await outbox(database)
    assert [(k, op, ref) for k, op, ref, _ in messages] == [
        ("alert", "post", f"alert:{incident.id}"),
        ("recovery", "reply", f"alert:{incident.id}"),
        ("update", "update", f"alert:{incident.id}"),
    ]
    lasted = recovered_at - first_failure
    assert messages[1][3].text == f"nas recovered after {_minutes(lasted)} of downtime."
    assert messages[2][3].title == f"Resolved: nas was down for {_minutes(lasted)}"
    assert messages[2][3].buttons == ()


def _minutes(delta: timedelta) -> str:
    minutes, seconds = divmod(round(delta.total_seconds()), 60)
    return f"{minutes}m {seconds}s" if seconds else f"{minutes}m"


async def test_the_alert_names_target_error_since_latency_service_and_open_work(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas", target="nas.lan:445", service="storage")

    def work(session: Any) -> None:
        session.add(
            WorkItem(
                title="Swap the NAS disks",
                category="service",
                action="change",
                service="storage",
                branch="service/change/nas-disks-20261203",
                created_by="slack:UOPS",
                created_at=clock(),
            )
        )

    await database.write(work)
    await feed(engine, clock, nas, True, False, False, False)

    [(_, _, _, alert)] = await outbox(database)
    fields = {f.name: f.value for f in alert.fields}
    assert fields["Target"] == "`tcp://nas.lan:445`"
    assert fields["Error"] == "connection refused"
    assert fields["Latency before"] == "12 ms"
    assert fields["Service"] == "storage"
    assert "Swap the NAS disks" in fields["Recent changes"]
    assert "nas is down since 2026-12-03 12:01 UTC" in alert.text
    assert [b.label for b in alert.buttons] == ["Acknowledge", "Mute 1 h", "Re-check now"]
    assert alert.buttons[1].command == "mute nas 1h"


async def test_no_reminders_by_default(database: Database, clock: FakeClock) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas")
    await feed(engine, clock, nas, False, False, False)

    clock.advance(timedelta(hours=3))
    await engine.housekeeping()

    assert [k for k, *_ in await outbox(database)] == ["alert"]


async def test_reminders_in_the_thread_until_acknowledged(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    engine.policy = engine.policy.model_copy(update={"reminder": timedelta(minutes=30)})
    nas = await add(database, clock, name="nas")
    await feed(engine, clock, nas, False, False, False)

    for _ in range(2):
        clock.advance(timedelta(minutes=30))
        await engine.housekeeping()
        await engine.housekeeping()  # a second pass at the same time sends nothing more
    [incident] = await incidents(database)
    await engine.ack(incident.id, "ana", "replacing the PSU")
    clock.advance(timedelta(hours=2))
    await engine.housekeeping()

    messages = await outbox(database)
    assert [(k, op) for k, op, *_ in messages] == [
        ("alert", "post"),
        ("reminder", "reply"),
        ("reminder", "reply"),
        ("ack", "reply"),
        ("update", "update"),
    ]
    assert messages[2][3].text.startswith("Down for 1h")
    assert messages[3][3].text == "Acknowledged by ana: replacing the PSU. Reminders stop."
    assert "acknowledged by ana: replacing the PSU" in (messages[4][3].footer or "")
    assert [b.label for b in messages[4][3].buttons] == ["Mute 1 h", "Re-check now"]


async def test_per_endpoint_reminder_overrides_the_default(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas", remind=timedelta(minutes=10))
    await feed(engine, clock, nas, False, False, False)

    clock.advance(timedelta(minutes=10))
    await engine.housekeeping()

    assert [k for k, *_ in await outbox(database)] == ["alert", "reminder"]


async def test_ack_is_refused_twice_and_after_recovery_and_clears_with_the_outage(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas")
    await feed(engine, clock, nas, False, False, False)
    [incident] = await incidents(database)
    await engine.ack(incident.id, "ana", None)

    with pytest.raises(UsageError, match="already acknowledged by ana"):
        await engine.ack(incident.id, "bo", None)
    await feed(engine, clock, nas, True, True)
    with pytest.raises(UsageError, match="already resolved"):
        await engine.ack(incident.id, "bo", None)
    await feed(engine, clock, nas, False, False, False)

    first, second = await incidents(database)
    assert first.acked_by == "ana"
    assert second.acked_by is None  # a new outage starts unacknowledged


async def test_a_warning_keeps_the_endpoint_up_and_is_shown(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    web = await add(database, clock, name="web", type="tls", target="web.lan:443")

    obs = Observation(web, clock(), True, 30.0, "certificate expires in 3 days")
    await engine.apply([obs])

    ep = await database.read(lambda s: s.get(Endpoint, web))
    assert (ep.state, ep.last_error) == ("up", "certificate expires in 3 days")
    assert await outbox(database) == []


async def test_results_of_a_removed_endpoint_are_dropped(
    database: Database, clock: FakeClock
) -> None:
    engine = engine_for(database, clock)
    nas = await add(database, clock, name="nas")
    other = await add(database, clock, name="other")

    await database.write(lambda s: s.delete(s.get(Endpoint, nas)))
    delays = await engine.apply(
        [Observation(nas, clock(), False, None, "x"), Observation(other, clock(), True, 1.0)]
    )

    assert delays == {other: 60.0}
