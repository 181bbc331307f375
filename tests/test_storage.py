"""Storage: migrations, the schema they build, time zones, and transactions that
stay correct under concurrency on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import DetachedInstanceError

from calcifer_bot.aio import blocking
from calcifer_bot.db import Database, alembic_config, normalize_url
from calcifer_bot.models import (
    AuditEntry,
    Base,
    CheckResult,
    Endpoint,
    Incident,
    WorkItem,
    WorkNote,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def audit(text: str = "status", at: datetime = NOW) -> AuditEntry:
    return AuditEntry(
        at=at,
        identity="slack:U1",
        platform="slack",
        channel="C1",
        command="status",
        text=text,
        outcome="ok",
        duration_ms=1.5,
    )


def endpoint(name: str, **fields: Any) -> Endpoint:
    return Endpoint(
        name=name, kind="tcp", target="127.0.0.1", port=22, created_at=NOW, updated_at=NOW, **fields
    )


def result(endpoint_id: int, ok: bool = True) -> CheckResult:
    return CheckResult(endpoint_id=endpoint_id, checked_at=NOW, ok=ok, latency_ms=0.5)


def count(model: type[Base]) -> Callable[[Session], int]:
    return lambda session: session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def fresh(database_url: str) -> Iterator[Database]:
    """A database nothing has been migrated into yet."""
    db = Database(database_url)
    yield db
    db.dispose()


# -- migrations ---------------------------------------------------------------


def test_upgrade_creates_every_table_and_reaches_head(fresh: Database) -> None:
    current, head = fresh.revision()
    assert current is None

    fresh.upgrade()

    assert fresh.revision() == (head, head)
    tables = set(inspect(fresh.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_upgrading_again_is_harmless_and_keeps_data(fresh: Database) -> None:
    fresh.upgrade()
    with Session(fresh.engine) as session, session.begin():
        session.add(endpoint("nas"))

    fresh.upgrade()  # every start runs this

    current, head = fresh.revision()
    assert current == head
    with Session(fresh.engine) as session:
        assert session.scalars(select(Endpoint.name)).all() == ["nas"]


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    with db.engine.begin() as connection:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def test_endpoints_from_before_0004_get_no_tags_critical_and_keep_their_history(
    fresh: Database,
) -> None:
    fresh.upgrade("0003")
    with fresh.engine.begin() as connection:  # the 0003 schema: no ORM, plain SQL
        connection.execute(
            text(
                "INSERT INTO endpoints (name, kind, target, interval_s, timeout_s, failures, "
                "successes, options, source, state, fail_streak, ok_streak, created_at, "
                "updated_at) VALUES ('nas', 'tcp', '127.0.0.1', 60, 5, 3, 2, '{}', 'chat', "
                "'up', 0, 0, '2026-12-03 12:00:00.000000', '2026-12-03 12:00:00.000000')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO check_results (endpoint_id, checked_at, ok) "
                "SELECT id, '2026-12-03 12:00:00.000000', true FROM endpoints"
            )
        )

    fresh.upgrade()

    with Session(fresh.engine) as session:
        nas = session.scalars(select(Endpoint)).one()
        assert (nas.name, nas.tags, nas.severity) == ("nas", [], "critical")
        assert count(CheckResult)(session) == 1

    # Down and up again: the columns go and come back; the row and its history stay.
    downgrade(fresh, "0003")
    columns = {c["name"] for c in inspect(fresh.engine).get_columns("endpoints")}
    assert {"tags", "severity"}.isdisjoint(columns)
    with fresh.engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM endpoints")).scalars().all() == ["nas"]
        assert connection.execute(text("SELECT count(*) FROM check_results")).scalar() == 1
    fresh.upgrade()
    with fresh.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


# -- time zones -----------------------------------------------------------------


async def test_timestamps_round_trip_as_aware_utc(database: Database) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2026, 12, 3, 17, 30, 15, 123456, tzinfo=india)
    await database.write(lambda s: s.add(audit(at=at)))

    # A bound in yet another zone compares as the same instant.
    since = at.astimezone(timezone(timedelta(hours=-8))) - timedelta(seconds=1)
    [stored] = await database.read(
        lambda s: s.scalars(select(AuditEntry.at).where(AuditEntry.at > since)).all()
    )

    assert stored == at
    assert stored.tzinfo is UTC
    assert stored.replace(tzinfo=None) == datetime(2026, 12, 3, 12, 0, 15, 123456)


async def test_a_naive_datetime_is_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await database.write(lambda s: s.add(audit(at=datetime(2026, 12, 3, 12, 0))))
    assert await database.read(count(AuditEntry)) == 0


# -- SQLite specifics -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pragma", "expected"), [("journal_mode", "wal"), ("foreign_keys", 1), ("busy_timeout", 30000)]
)
def test_sqlite_connection_settings(tmp_path: Path, pragma: str, expected: object) -> None:
    # The default URL points into ./data/, which need not exist yet.
    db = Database(f"sqlite:///{tmp_path / 'data' / 'calcifer.db'}")
    try:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql(f"PRAGMA {pragma}").scalar() == expected
    finally:
        db.dispose()


@pytest.mark.parametrize(("transaction", "locks_out_writers"), [("write", True), ("read", False)])
async def test_sqlite_writes_take_the_write_lock_at_begin(
    tmp_path: Path, transaction: str, locks_out_writers: bool
) -> None:
    """A write holds the lock from its first read, so no other writer slips in
    between its read and its write ("database is locked"); reads block nobody."""
    path = tmp_path / "calcifer.db"
    db = Database(f"sqlite:///{path}")
    await blocking(db.upgrade)

    def read_then_try_another_writer(session: Session) -> bool:
        session.execute(select(Endpoint.id)).all()
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:  # database is locked
            return True
        finally:
            other.close()

    try:
        run = db.write if transaction == "write" else db.read
        assert await run(read_then_try_another_writer) is locks_out_writers
    finally:
        db.dispose()


# -- transactions -----------------------------------------------------------------


async def test_concurrent_writes_all_succeed_and_none_is_lost(database: Database) -> None:
    await database.write(lambda s: s.add(endpoint("counter")))

    def record_and_bump(n: int) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            # Read-modify-write: BEGIN IMMEDIATE serialises it on SQLite, the row
            # lock on PostgreSQL (FOR UPDATE is a no-op on SQLite).
            query = select(Endpoint).where(Endpoint.name == "counter").with_for_update()
            counter = session.scalars(query).one()
            counter.fail_streak += 1
            session.add(audit(f"status {n}"))

        return work

    await asyncio.gather(*(database.write(record_and_bump(n)) for n in range(50)))

    assert await database.read(count(AuditEntry)) == 50
    counter = await database.read(
        lambda s: s.scalars(select(Endpoint.fail_streak).where(Endpoint.name == "counter")).one()
    )
    assert counter == 50


async def test_sqlite_writers_of_one_process_take_turns_in_order(tmp_path: Path) -> None:
    """Writers queue in the order they came, not in SQLite's busy handler, which
    sleeps and lets a late writer overtake an early one (bench_notify saw 600 ms)."""
    db = Database(f"sqlite:///{tmp_path / 'calcifer.db'}")
    await blocking(db.upgrade)
    order: list[int] = []

    def note(n: int) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            session.add(audit(f"status {n}"))
            session.flush()  # BEGIN IMMEDIATE: from here on this writer has the lock
            order.append(n)
            time.sleep(0.005)  # hold it a while, as a real transaction does

        return work

    try:
        await asyncio.gather(*(db.write(note(n)) for n in range(40)))
    finally:
        db.dispose()

    assert order == list(range(40))


class SqlGate:
    """An SQL statement that blocks until someone opens the gate.

    SQLite: a user-defined function waiting on an event. PostgreSQL: an
    advisory lock another connection holds until the gate opens.
    """

    KEY = 0x7E57

    def __init__(self, db: Database) -> None:
        self.db = db
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.holder: Connection | None = None
        if db.kind == "postgresql":
            self.holder = db.engine.connect()
            self.holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.KEY})

    def pass_through(self, session: Session) -> bool:
        """Run the blocking statement; True if the gate was opened while it waited."""
        if self.db.kind == "sqlite":
            raw = session.connection().connection.driver_connection
            raw.create_function("gate", 0, lambda: self.opened.wait(10))
            statement = text("SELECT gate()")
        else:
            session.execute(text("SET LOCAL lock_timeout = '10s'"))
            statement = text("SELECT pg_advisory_xact_lock(:k)")
        self.entered.set()
        session.execute(statement, {"k": self.KEY})
        return self.opened.is_set()

    def open(self) -> None:
        self.opened.set()
        if self.holder is not None:
            self.holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.KEY})
            self.holder.close()


async def test_a_slow_write_does_not_block_the_event_loop(database: Database) -> None:
    gate = SqlGate(database)
    write = asyncio.create_task(database.write(gate.pass_through))

    # Only code on the loop opens the gate. Had the write run on the loop, the
    # loop would sit in the statement until it timed out and the write failed.
    assert await asyncio.to_thread(gate.entered.wait, 10)
    gate.open()

    assert await write is True


async def test_write_rolls_back_when_the_function_raises(database: Database) -> None:
    def add_then_fail(session: Session) -> None:
        session.add(endpoint("nas"))
        session.flush()  # the row reached the database inside the transaction
        raise RuntimeError("checker exploded")

    with pytest.raises(RuntimeError, match="checker exploded"):
        await database.write(add_then_fail)

    assert await database.read(count(Endpoint)) == 0


async def test_objects_stay_readable_after_their_session_ends(database: Database) -> None:
    def add_item(session: Session) -> WorkItem:
        item = WorkItem(
            title="Upgrade NAS",
            category="maintenance",
            action="upgrade",
            branch="work/upgrade-nas",
            created_by="slack:U1",
            created_at=NOW,
        )
        item.notes.append(WorkNote(author="slack:U1", text="backup first", created_at=NOW))
        session.add(item)
        return item

    created = await database.write(add_item)
    assert isinstance(created.id, int)  # assigned at commit, still readable afterwards

    plain = await database.read(lambda s: s.get(WorkItem, created.id))
    with_notes = await database.read(
        lambda s: s.scalars(select(WorkItem).options(selectinload(WorkItem.notes))).one()
    )

    assert inspect(plain).detached and inspect(with_notes).detached
    assert (plain.title, plain.status, plain.created_at) == ("Upgrade NAS", "open", NOW)
    assert [note.text for note in with_notes.notes] == ["backup first"]
    with pytest.raises(DetachedInstanceError):
        _ = plain.notes  # never loaded: reads must load what they hand out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://bot:pw@db:5432/calcifer", "postgresql+psycopg://bot:pw@db:5432/calcifer"),
        ("postgres://bot:pw@db/calcifer", "postgresql+psycopg://bot:pw@db/calcifer"),
        ("postgresql+psycopg://db/calcifer", "postgresql+psycopg://db/calcifer"),
        ("sqlite:///./data/calcifer.db", "sqlite:///./data/calcifer.db"),
    ],
)
def test_normalize_url_picks_the_psycopg_driver(raw: str, expected: str) -> None:
    assert normalize_url(raw).render_as_string(hide_password=False) == expected


# -- constraints --------------------------------------------------------------------


@pytest.mark.parametrize(
    "conflicting",
    [
        pytest.param(lambda nas_id: endpoint("nas"), id="duplicate-name"),
        pytest.param(
            lambda nas_id: endpoint("nas-2", push_token="tok-1"), id="duplicate-push-token"
        ),
        pytest.param(lambda nas_id: result(nas_id + 1000), id="result-for-missing-endpoint"),
    ],
)
async def test_constraints_refuse_bad_rows(
    database: Database, conflicting: Callable[[int], Base]
) -> None:
    nas = await database.write(lambda s: _added(s, endpoint("nas", push_token="tok-1")))

    with pytest.raises(IntegrityError):
        await database.write(lambda s: s.add(conflicting(nas.id)))

    assert await database.read(count(Endpoint)) == 1
    assert await database.read(count(CheckResult)) == 0


async def test_deleting_an_endpoint_cascades_to_its_history(database: Database) -> None:
    def seed(session: Session) -> None:
        nas, other = _added(session, endpoint("nas")), _added(session, endpoint("router"))
        session.add(endpoint("nas-web", parent_id=nas.id))
        session.add_all([result(nas.id), result(nas.id, ok=False), result(other.id)])
        session.add(Incident(endpoint_id=nas.id, started_at=NOW))

    def delete_nas(session: Session) -> None:
        session.delete(session.scalars(select(Endpoint).where(Endpoint.name == "nas")).one())

    await database.write(seed)
    await database.write(delete_nas)

    def survivors(session: Session) -> dict[str, Any]:
        return {
            "results": session.scalars(select(CheckResult.endpoint_id)).all(),
            "incidents": session.scalar(select(func.count()).select_from(Incident)),
            "nas-web parent": session.scalar(
                select(Endpoint.parent_id).where(Endpoint.name == "nas-web")
            ),
        }

    router_id = await database.read(
        lambda s: s.scalar(select(Endpoint.id).where(Endpoint.name == "router"))
    )
    assert await database.read(survivors) == {
        "results": [router_id],
        "incidents": 0,
        "nas-web parent": None,
    }


def _added(session: Session, row: Endpoint) -> Endpoint:
    session.add(row)
    session.flush()  # assigns the id
    return row


def test_db_revision_writes_nothing_when_models_and_migrations_agree(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'revision.db'}")
    try:
        assert db.new_revision("nothing changed") == []
    finally:
        db.dispose()


def test_postgres_without_its_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # psycopg is installed here, so its absence is simulated at the one place that looks.
    import importlib.util

    from calcifer_bot.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'calcifer\[postgres\]'"):
        normalize_url("postgresql://calcifer@127.0.0.1/calcifer")
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
