"""Endpoint definitions: one validation for `endpoint add` and TOML ``[[endpoints]]``.

Everything is checked before anything is written: a bad definition is an
error naming the field, and the database is left as it was.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from calcifer_bot.config import SEVERITIES
from calcifer_bot.errors import ConfigError, UsageError
from calcifer_bot.models import Endpoint, EndpointGroup
from calcifer_bot.parser import parse_duration
from integrations.monitoring import parse_target

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
CHANNEL_PLATFORMS = ("slack", "discord", "console")
MAX_TAGS = 20
_TAG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,49}")
_TAG_CHAR = re.compile(r"[a-z0-9_.-]")


@dataclass(slots=True)
class Definition:
    """What a user declares about an endpoint: the fields of ``endpoint add``."""

    name: str
    type: str
    target: str = ""
    port: int | None = None
    interval: timedelta = timedelta(seconds=60)
    timeout: timedelta = timedelta(seconds=5)
    failures: int = 3
    successes: int = 2
    expect: str | None = None
    keyword: str | None = None
    insecure: bool = False
    warn_days: int = 14
    address: str | None = None
    channel: str | None = None
    service: str | None = None
    group: str | None = None
    quorum: int | None = None
    depends_on: str | None = None
    remind: timedelta | None = None
    tags: tuple[str, ...] = ()
    severity: str = "critical"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"endpoint name {name!r} must start with a letter or digit and use only "
            "letters, digits, '.', '-' and '_' (at most 100)"
        )
    return name


def check_tag(raw: str) -> str:
    """One tag, lowercased; ValueError says what is wrong with it."""
    tag = raw.strip().lower()
    if _TAG.fullmatch(tag):
        return tag
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > 50:
        raise ValueError(f"{raw!r} is longer than 50 characters")
    if not _TAG_CHAR.fullmatch(tag[0]) or tag[0] in "_.-":
        raise ValueError(f"{raw!r} must start with a letter a-z or a digit")
    bad = next(c for c in tag if not _TAG_CHAR.fullmatch(c))
    raise ValueError(f"{raw!r} contains {bad!r}; use only a-z, 0-9, '.', '-' and '_'")


def split_tags(text: str) -> tuple[str, ...]:
    """``web, prod`` as typed after ``--tags``; blanks (a trailing comma) are dropped."""
    return tuple(part for part in text.split(",") if part.strip())


def check_tags(raw: Iterable[str]) -> tuple[str, ...]:
    """Valid, lowercased tags with duplicates dropped, in the order given."""
    tags: dict[str, None] = {}  # a dict keeps the first occurrence's position
    for item in raw:
        try:
            tags[check_tag(item)] = None
        except ValueError as exc:
            raise UsageError(f"--tags: {exc}") from None
    if len(tags) > MAX_TAGS:
        raise UsageError(f"--tags: at most {MAX_TAGS} tags, got {len(tags)}")
    return tuple(tags)


def check_severity(raw: object) -> str:
    severity = raw.strip().lower() if isinstance(raw, str) else raw
    if severity not in SEVERITIES:
        raise UsageError(f"--severity must be one of {', '.join(SEVERITIES)}, not {raw!r}")
    return str(severity)


def has_tag(tag: str, dialect: str) -> ColumnElement[bool]:
    """A WHERE clause: the endpoint carries ``tag``. Exact, unlike LIKE on the JSON text."""
    if dialect == "postgresql":
        elements = func.json_array_elements_text(Endpoint.tags).table_valued("value")
    else:
        elements = func.json_each(Endpoint.tags).table_valued("value")
    return exists(select(1).select_from(elements).where(elements.c.value == tag))


def qualify_channel(channel: str, platform: str) -> str:
    """``C123`` typed in Slack means ``slack:C123``; ``console`` is the terminal."""
    channel = channel.strip().lstrip("#")
    if channel == "console":
        return channel
    prefix, sep, rest = channel.partition(":")
    if sep:
        if prefix not in CHANNEL_PLATFORMS or not rest:
            raise UsageError(f"channel {channel!r}: expected slack:ID, discord:ID or console")
        return channel
    if platform not in ("slack", "discord"):
        raise UsageError(f"channel {channel!r}: say which platform, e.g. slack:{channel}")
    return f"{platform}:{channel}"


def build(
    d: Definition, session: Session, now: datetime, *, source: str, replaces: int | None = None
) -> Endpoint:
    """Validate ``d`` against the database and return a new, unsaved Endpoint.

    ``replaces`` is the id of the endpoint this definition updates, which may keep its name.
    """
    check_name(d.name)
    if session.scalar(
        select(Endpoint.id).where(Endpoint.name == d.name, Endpoint.id != (replaces or 0))
    ):
        raise UsageError(f"an endpoint named {d.name!r} exists already; pick another name")
    if d.interval <= timedelta(0):
        raise UsageError("--interval must be above zero, e.g. 60s")
    if d.timeout <= timedelta(0):
        raise UsageError("--timeout must be above zero, e.g. 5s")
    if d.timeout > d.interval:
        raise UsageError("--timeout must not be longer than --interval")
    if d.failures < 1 or d.successes < 1:
        raise UsageError("--failures and --successes must be 1 or more")
    if d.quorum is not None and (d.quorum < 1 or not d.group):
        raise UsageError("--quorum needs --group and a count of 1 or more")
    if d.remind is not None and d.remind < timedelta(minutes=5):
        raise UsageError("--remind must be at least 5m")
    tags = check_tags(d.tags)
    severity = check_severity(d.severity)
    target = parse_target(
        d.type,
        d.target,
        port=d.port,
        timeout_s=d.timeout.total_seconds(),
        expect=d.expect,
        keyword=d.keyword,
        verify_tls=not d.insecure,
        warn_days=d.warn_days,
        expect_address=d.address,
    )
    parent_id = None
    if d.depends_on:
        if d.depends_on == d.name:
            raise UsageError(f"{d.name} cannot depend on itself")
        parent_id = session.scalar(select(Endpoint.id).where(Endpoint.name == d.depends_on))
        if parent_id is None:
            raise UsageError(f"--depends-on {d.depends_on}: there is no endpoint by that name")
    text, port, options = target.stored
    ep = Endpoint(
        name=d.name,
        kind=target.kind,
        target=text,
        port=port,
        interval_s=d.interval.total_seconds(),
        timeout_s=d.timeout.total_seconds(),
        failures=d.failures,
        successes=d.successes,
        options=options,
        channel=d.channel,
        service=d.service,
        group_name=d.group,
        tags=list(tags),
        severity=severity,
        parent_id=parent_id,
        push_token=secrets.token_urlsafe(18) if target.kind == "push" else None,
        source=source,
        state="unknown",
        recent="",
        flapping=False,
        remind_s=d.remind.total_seconds() if d.remind else None,
        created_at=now,
        updated_at=now,
    )
    if d.group:
        group = session.get(EndpointGroup, d.group)
        if group is None:
            session.add(EndpointGroup(name=d.group, quorum=d.quorum or 1))
        elif d.quorum is not None:
            group.quorum = d.quorum
    return ep


# -- TOML [[endpoints]] ------------------------------------------------------

_DURATIONS = {"interval", "timeout", "remind"}
_FIELDS = set(Definition.__dataclass_fields__) | {"depends-on", "warn-days"}


def definitions_from_config(entries: tuple[dict[str, Any], ...]) -> list[Definition]:
    """Turn ``[[endpoints]]`` tables into definitions; ConfigError names the entry and key."""
    out: list[Definition] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, 1):
        where = f"[[endpoints]] #{n}" + (f" ({entry['name']})" if "name" in entry else "")
        values: dict[str, Any] = {}
        for key, value in entry.items():
            attr = key.replace("-", "_")
            if key not in _FIELDS and attr not in _FIELDS:
                raise ConfigError(f"{where}: unknown field {key!r}")
            if attr in _DURATIONS:
                try:
                    value = (
                        parse_duration(value)
                        if isinstance(value, str)
                        else timedelta(seconds=float(value))
                    )
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"{where}: {key}: {exc}") from None
            if attr == "tags":
                value = _config_tags(value, where)
            values[attr] = value
        for required in ("name", "type"):
            if required not in values:
                raise ConfigError(f"{where}: {required} is required")
        if values["name"] in seen:
            raise ConfigError(f"{where}: the name {values['name']!r} is used twice")
        seen.add(values["name"])
        out.append(Definition(**values))
    _check_cycles(out)
    return out


def _config_tags(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return split_tags(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: tags: expected a list of strings or a comma-separated string")


def _check_cycles(defs: list[Definition]) -> None:
    parents = {d.name: d.depends_on for d in defs}
    for start in parents:
        path, node = [start], parents[start]
        while node is not None and node in parents:
            if node in path:
                cycle = " -> ".join([*path[path.index(node) :], node])
                raise ConfigError(f"[[endpoints]]: dependency cycle {cycle}")
            path.append(node)
            node = parents[node]


def sync_from_config(session: Session, defs: list[Definition], now: datetime) -> list[str]:
    """Make the configured endpoints match the file; returns what changed, for the log.

    Endpoints added in chat are left alone; configured ones that left the file
    are removed; changed ones are rebuilt but keep their state and history.
    """
    changes: list[str] = []
    existing = {
        ep.name: ep for ep in session.scalars(select(Endpoint).where(Endpoint.source == "config"))
    }
    wanted = {d.name for d in defs}
    for name, ep in existing.items():
        if name not in wanted:
            session.delete(ep)
            changes.append(f"removed {name}")
    session.flush()
    pending = list(defs)
    # Parents first, so --depends-on finds them.
    while pending:
        ready = [d for d in pending if d.depends_on not in {p.name for p in pending}]
        for d in ready:
            pending.remove(d)
            try:
                _sync_one(session, d, existing.get(d.name), now, changes)
            except UsageError as exc:
                raise ConfigError(f"[[endpoints]] {d.name}: {exc.message}") from None
    return changes


_KEEP = (
    "id", "state", "state_since", "fail_streak", "ok_streak", "streak_since", "recent",
    "flapping", "flap_ref", "last_checked_at", "last_latency_ms", "last_error", "last_push_at",
    "muted_until", "mute_reason", "muted_by", "push_token", "created_at",
)  # fmt: skip


def _sync_one(
    session: Session, d: Definition, old: Endpoint | None, now: datetime, changes: list[str]
) -> None:
    clash = session.scalars(select(Endpoint).where(Endpoint.name == d.name)).first()
    if clash is not None and clash.source != "config":
        raise UsageError("an endpoint of that name was added in chat; rename one of them")
    new = build(d, session, now, source="config", replaces=old.id if old else None)
    if old is None:
        session.add(new)
        changes.append(f"added {d.name}")
        return
    fresh = {c: getattr(new, c) for c in _COLUMNS if c not in _KEEP}
    if any(getattr(old, c) != v for c, v in fresh.items() if c != "updated_at"):
        for c, v in fresh.items():
            setattr(old, c, v)
        changes.append(f"updated {d.name}")
    session.flush()


_COLUMNS = [c.key for c in Endpoint.__table__.columns]
