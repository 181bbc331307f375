"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured),
a migrated core, and a test bot in the style of Errbot's ``testbot``: push a
command as some user, get the platform-neutral Reply back."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
import pytest
from sqlalchemy import create_engine, text

import integrations
from calcifer_bot import http
from calcifer_bot.commands import Registry
from calcifer_bot.config import Settings, load_settings
from calcifer_bot.core import Core
from calcifer_bot.db import Database, normalize_url
from calcifer_bot.endpoints import Definition, build
from calcifer_bot.engine import Observation
from calcifer_bot.models import Base
from calcifer_bot.reply import Command, Reply
from tests.fakediscord import FakeDiscord, running_fake_discord
from tests.fakeslack import PROXY_VARIABLES, FakeSlack, running_fake_slack

POSTGRES_URL = os.environ.get("CALCIFER_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL for a schema of our own on the server at ``url``, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = normalize_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _needs_postgres() -> str:
    if not POSTGRES_URL:
        pytest.skip("CALCIFER_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    return POSTGRES_URL


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'calcifer.db'}"
        return
    with postgres_schema(_needs_postgres()) as url:
        yield url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "calcifer.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_migrated() -> Iterator[str]:
    with postgres_schema(_needs_postgres()) as url:
        db = Database(url)
        db.upgrade()
        db.dispose()
        yield url


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database without rows.

    Migrating costs a few hundred ms, so it happens once per session: SQLite
    tests get a copy of a migrated file, PostgreSQL tests the session's schema
    truncated (identities restarted, so ids start at 1 as in a fresh one).
    """
    if request.param == "sqlite":
        path = tmp_path / "calcifer.db"
        with (
            closing(sqlite3.connect(request.getfixturevalue("_sqlite_template"))) as src,
            closing(sqlite3.connect(path)) as dst,
        ):
            src.backup(dst)
        db = Database(f"sqlite:///{path}")
    else:
        db = Database(request.getfixturevalue("_postgres_migrated"))
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield db
    db.dispose()


class FakeClock:
    """A clock tests move by hand: no test sleeps for minutes."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: bound to learn a free number, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener whose connections complete in the kernel and are never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(database_url: str, **env: str) -> Settings:
    return load_settings(environ={"CALCIFER_DATABASE_URL": database_url, **env})


@dataclass
class ChatBot:
    """Push a command as a user, get the Reply (Errbot's testbot, Hubot's dummy adapter)."""

    core: Core

    async def say(
        self,
        text: str,
        *,
        user: str = "console:local",
        channel: str = "C1",
        groups: frozenset[str] = frozenset(),
    ) -> Reply:
        platform, _, uid = user.partition(":")
        return await self.core.dispatch(Command(platform, uid, channel, text, groups=groups))


@pytest.fixture
def settings_env() -> dict[str, str]:
    """Extra environment for the core's settings; tests override it."""
    return {"CALCIFER_ADMINS": "slack:UADMIN", "CALCIFER_OPERATORS": "slack:UOPS"}


@pytest.fixture
async def core(
    database: Database, settings_env: dict[str, str], clock: FakeClock
) -> AsyncIterator[Core]:
    settings = make_settings(database.url.render_as_string(hide_password=False), **settings_env)
    integrations.configure(settings)
    yield Core(settings, database, clock=clock)
    await integrations.close_all()
    await http.close()


@pytest.fixture
def bot(core: Core) -> ChatBot:
    return ChatBot(core)


@pytest.fixture
def registry() -> Registry:
    """An empty registry for tests that declare commands of their own."""
    return Registry()


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A running fake Slack (tests/fakeslack.py), with the proxy variables cleared.

    slack_sdk sends even 127.0.0.1 traffic through $HTTPS_PROXY (it ignores NO_PROXY).
    """
    with pytest.MonkeyPatch.context() as env:
        for name in PROXY_VARIABLES:
            env.delenv(name, raising=False)
        async with running_fake_slack() as fake:
            yield fake


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A running fake Discord (tests/fakediscord.py).

    discord.py reads its REST base and gateway URL from two class attributes shared by
    the whole process; whatever a test (or the adapter) points them at is undone here.
    """
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    try:
        async with running_fake_discord() as fake:
            yield fake
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


async def add_endpoint(core: Core, name: str, *, channel: str, **fields: Any) -> int:
    """An endpoint straight into the database, alerting to ``channel``."""
    fields.setdefault("type", "tcp")
    fields.setdefault("target", "10.0.0.1:22")

    def run(session: Any) -> int:
        ep = build(
            Definition(name=name, channel=channel, **fields), session, core.clock(), source="chat"
        )
        session.add(ep)
        session.flush()
        return ep.id

    return await core.db.write(run)


async def observe(core: Core, endpoint_id: int, ok: bool) -> None:
    """One check result through the real alert engine."""
    error = None if ok else "connection refused"
    obs = Observation(endpoint_id, core.clock(), ok, 3.0 if ok else None, error)
    await core.engine.apply([obs])


# -- git repositories ---------------------------------------------------------------

CHANGES = """# Changelog

## [Unreleased]

### Added
- The first service.
"""


def git(repo: Path, *args: str, at: str | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    if at is not None:  # the commit's time, so it falls before the test clock's outage
        env |= {"GIT_AUTHOR_DATE": at, "GIT_COMMITTER_DATE": at}
    done = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.org", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    """A real git repository on main, with a valid CHANGES.md, made by the git CLI."""
    path = tmp_path / "infra"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "CHANGES.md").write_text(CHANGES)
    git(path, "add", "CHANGES.md")
    git(path, "commit", "-q", "-m", "Start")
    yield path


def snapshot(repo: Path) -> tuple[str, str, str]:
    """HEAD, every ref and the working tree's state: what "unchanged" means."""
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "for-each-ref"),
        git(repo, "status", "--porcelain"),
    )
