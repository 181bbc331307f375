"""Database access: one engine, transactions run off the event loop.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so two writers queue up instead of failing with "database
is locked" when one tries to upgrade a read lock. PostgreSQL is the same code
with another URL.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from calcifer_bot.aio import blocking
from calcifer_bot.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

_WRITE = "calcifer_write"
# Arbitrary but fixed: replicas starting together migrate one at a time.
_MIGRATION_LOCK = 0x6361_6C63


def normalize_url(raw: str) -> URL:
    """Pick the psycopg 3 driver for plain ``postgresql://`` URLs, which Calcifer ships."""
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername == "postgresql+psycopg" and importlib.util.find_spec("psycopg") is None:
        raise ConfigError("PostgreSQL needs its driver: pip install 'calcifer[postgres]'")
    return url


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.kind = self.url.get_backend_name()
        if self.kind == "sqlite":
            self.engine = _sqlite_engine(self.url)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time. Writers of this process queue here, in
        # order, rather than in SQLite's busy handler, which sleeps and is unfair:
        # concurrent deliveries saw single writes wait 600 ms (bench_notify).
        self._write_turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a worker thread inside a read transaction."""
        return await blocking(_run, self._reads, fn)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a worker thread; commit if it returns, roll back if it raises."""
        if self.kind != "sqlite":
            return await blocking(_run, self._writes, fn)
        async with self._turn():
            return await blocking(_run, self._writes, fn)

    def _turn(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._write_turn is None or self._write_turn[0] is not loop:
            self._write_turn = (loop, asyncio.Lock())  # a lock belongs to one loop
        return self._write_turn[1]

    async def ping(self) -> None:
        await self.read(lambda s: s.execute(text("SELECT 1")))

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations (blocking: call through :func:`calcifer_bot.aio.blocking`)."""
        from alembic import command

        with self._writes.begin() as session:
            connection = session.connection()
            if self.kind == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

    def revision(self) -> tuple[str | None, str]:
        """(revision the database is at, newest revision this code knows)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current, str(head)

    def new_revision(self, message: str) -> list[str]:
        """Autogenerate a migration from the models against this (migrated) database."""
        from alembic import command

        self.upgrade()
        _, head = self.revision()
        with self._writes.begin() as session:
            cfg = alembic_config()
            cfg.attributes["connection"] = session.connection()
            script = command.revision(
                cfg, message=message, autogenerate=True, rev_id=f"{int(head) + 1:04d}"
            )
        return [s.path for s in (script if isinstance(script, list) else [script]) if s]

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config() -> Config:
    # Imported here: alembic costs ~11 MB and start-up time, and only migrations need it.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "calcifer_bot:migrations")
    return cfg


def _run(factory: sessionmaker[Session], fn: Callable[[Session], T]) -> T:
    with factory.begin() as session:
        return fn(session)


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
