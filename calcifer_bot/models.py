"""The database schema (SQLAlchemy 2). Change it only together with a migration.

Timestamps are stored as naive UTC and always come back timezone-aware, so
SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Calcifer stores UTC-aware times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; big tables use BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer, "sqlite")

# Named constraints keep Alembic's batch migrations on SQLite deterministic.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Endpoint(Base):
    """Something Calcifer checks: a host, a port, a URL, a name, a push token."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # icmp tcp http https dns tls push
    target: Mapped[str] = mapped_column(String(2048), default="")
    port: Mapped[int | None]
    interval_s: Mapped[float] = mapped_column(default=60.0)
    timeout_s: Mapped[float] = mapped_column(default=5.0)
    failures: Mapped[int] = mapped_column(default=3)  # consecutive failures before down
    successes: Mapped[int] = mapped_column(default=2)  # consecutive successes before up
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # expect, keyword, …
    channel: Mapped[str | None] = mapped_column(String(200))
    service: Mapped[str | None] = mapped_column(String(100), index=True)
    group_name: Mapped[str | None] = mapped_column(String(100), index=True)
    # Labels for notification routing, lowercased and unique (endpoints.check_tags).
    tags: Mapped[list[Any]] = mapped_column(default=list)
    severity: Mapped[str] = mapped_column(String(16), default="critical")  # warning | info
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("endpoints.id", ondelete="SET NULL"))
    push_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="chat")  # chat | config
    state: Mapped[str] = mapped_column(String(16), default="unknown")  # unknown | up | down
    state_since: Mapped[datetime | None]
    fail_streak: Mapped[int] = mapped_column(default=0)
    ok_streak: Mapped[int] = mapped_column(default=0)
    streak_since: Mapped[datetime | None]  # first result of the current streak
    # The newest raw results, "1" up / "0" down, oldest first: flap detection needs no query.
    recent: Mapped[str] = mapped_column(String(32), default="")
    flapping: Mapped[bool] = mapped_column(default=False)
    flap_ref: Mapped[str | None] = mapped_column(String(64))
    last_checked_at: Mapped[datetime | None]
    last_latency_ms: Mapped[float | None]  # of the last successful check
    last_error: Mapped[str | None] = mapped_column(Text)
    last_push_at: Mapped[datetime | None]
    remind_s: Mapped[float | None]  # remind while down; None = the configured default
    muted_until: Mapped[datetime | None]
    mute_reason: Mapped[str | None] = mapped_column(Text)
    muted_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CheckResult(Base):
    __tablename__ = "check_results"
    # Covering: uptime and graphs read one endpoint's rows without touching the table,
    # whose pages interleave every endpoint's results (benchmarks/bench_queries.py).
    __table_args__ = (
        Index("ix_check_results_endpoint_time", "endpoint_id", "checked_at", "ok", "latency_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    checked_at: Mapped[datetime]
    ok: Mapped[bool]
    latency_ms: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)


class Incident(Base):
    """One outage of one endpoint, from the alert to the recovery."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_endpoint_open", "endpoint_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    # A child's outage folded into its --depends-on parent's incident.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    started_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    acked_at: Mapped[datetime | None]
    ack_note: Mapped[str | None] = mapped_column(Text)
    last_reminder_at: Mapped[datetime | None]
    detected_at: Mapped[datetime | None]  # when the failures reached the threshold
    latency_before_ms: Mapped[float | None]
    # The chat message that announces it ("alert:17"); several incidents share one
    # when they are grouped, folded into a parent or held by a group's quorum.
    alert_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    # Why no alert of its own: muted, maintenance, flapping, parent, quorum.
    suppressed: Mapped[str | None] = mapped_column(String(32))

    endpoint: Mapped[Endpoint] = relationship()


class AlertMessage(Base):
    """Where a message was posted, so it can be edited and threaded after a restart.

    ``ref`` is the outbox's name for the message ("alert:17"); adapters store
    and look up only that, so they know nothing of what the message is about.
    """

    __tablename__ = "alert_messages"
    __table_args__ = (UniqueConstraint("ref", "platform", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(200))  # Slack ts, Discord message id
    thread_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class EndpointGroup(Base):
    """A ``--group``: with a quorum above 1, one alert when that many members are down."""

    __tablename__ = "endpoint_groups"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    quorum: Mapped[int] = mapped_column(default=1)
    alert_ref: Mapped[str | None] = mapped_column(String(64))  # the open group alert
    down_since: Mapped[datetime | None]


class MaintenanceWindow(Base):
    """Planned downtime: alerts are held while it is active, history is kept."""

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime]
    duration_s: Mapped[float]
    every: Mapped[str | None] = mapped_column(String(8))  # None, "day", "week"
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    announced_end: Mapped[datetime | None]  # the last window end that was announced


class CheckRollup(Base):
    """Five minutes of one endpoint's results, once the raw rows have aged out."""

    __tablename__ = "check_rollups"
    __table_args__ = (
        Index(
            "ix_check_rollups_covering",
            "endpoint_id",
            "bucket",
            "checks",
            "failures",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_max_ms",
        ),
    )

    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    checks: Mapped[int]
    failures: Mapped[int]
    latency_p50_ms: Mapped[float | None]
    latency_p95_ms: Mapped[float | None]
    latency_max_ms: Mapped[float | None]


class OutboxMessage(Base):
    """A message waiting to be delivered: alerts survive chat outages and restarts."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "available_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Idempotency: one row per (incident, event, destination); a retry never duplicates.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    destination: Mapped[str] = mapped_column(String(200))  # slack:C1, discord:2, notify:ops
    kind: Mapped[str] = mapped_column(String(32))  # alert, recovery, reminder, ack, info
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|dead
    attempts: Mapped[int] = mapped_column(default=0)
    available_at: Mapped[datetime]
    leased_until: Mapped[datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class WorkItem(Base):
    """A change to infrastructure: one branch, a checklist, notes, a CHANGES.md entry."""

    __tablename__ = "work_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(100), index=True)
    repository: Mapped[str | None] = mapped_column(String(1024))
    branch: Mapped[str] = mapped_column(String(255))
    # The commit the branch started from: its CHANGES.md is what the branch must add to,
    # even after a merge has made the branch's own entries part of the target.
    base_commit: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    checklist: Mapped[list[Any]] = mapped_column(default=list)  # [{"text": …, "done": …}]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    notes: Mapped[list[WorkNote]] = relationship(
        back_populates="work_item", cascade="all, delete-orphan", order_by="WorkNote.id"
    )


class WorkNote(Base):
    __tablename__ = "work_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    work_item_id: Mapped[int] = mapped_column(ForeignKey("work_items.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

    work_item: Mapped[WorkItem] = relationship(back_populates="notes")


class ChangelogEntry(Base):
    __tablename__ = "changelog_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    work_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("work_items.id", ondelete="SET NULL")
    )
    version: Mapped[str] = mapped_column(String(50), default="Unreleased")
    section: Mapped[str] = mapped_column(String(16))  # Added, Changed, Fixed, …
    text: Mapped[str] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(255))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """Every command anyone ran, with who, where, what happened and how long it took."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    identity: Mapped[str] = mapped_column(String(200), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(200))
    command: Mapped[str | None] = mapped_column(String(100))  # resolved name, if any
    text: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # see dispatcher.Outcome
    duration_ms: Mapped[float]
    error_id: Mapped[str | None] = mapped_column(String(16))


class RoleGrant(Base):
    """A role given in chat (``role grant``), on top of CALCIFER_ADMINS/OPERATORS."""

    __tablename__ = "role_grants"

    identity: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime]
