"""The persistent outbox: every alert is a row before anyone tries to send it.

Producers call :func:`enqueue` inside the same transaction that changes the
state it announces (an incident opened, resolved, acknowledged), so a crash
either keeps both or neither. Deliverers (chat adapters, notification
providers) lease due rows, send them and mark them sent; a failure backs off
and retries, and after :data:`MAX_ATTEMPTS` the row is dead-lettered.

A message is posted (``post``), edits an earlier one (``update``) or answers in
its thread (``reply``). Earlier messages are named by ``ref`` ("alert:17");
which chat message a ref became is stored in ``alert_messages`` when the post
is marked sent, so edits and threads survive restarts. Deliverers never learn
what a ref is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from calcifer_bot.db import Database
from calcifer_bot.errors import CalciferError
from calcifer_bot.models import AlertMessage, OutboxMessage
from calcifer_bot.reply import MessageRef, Reply

log = logging.getLogger(__name__)

Op = Literal["post", "update", "reply"]
MAX_ATTEMPTS = 10
OUTBOX_TOUCHED = "calcifer_outbox_touched"  # Session.info flag: wake the deliverers
LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    destination: str  # "slack:C1", "discord:2", "console", "notify:ops"
    kind: str  # alert, recovery, reminder, ack, info, flapping
    op: Op
    ref: str | None
    reply: Reply
    # For update and reply: the message that was posted under ``ref`` here.
    target: MessageRef | None
    attempts: int
    # An earlier attempt may have reached the platform (it failed, or its worker
    # died mid-send): a deliverer that can look should check before posting again.
    retried: bool = False

    @property
    def platform(self) -> str:
        return self.destination.partition(":")[0]

    @property
    def channel(self) -> str:
        return self.destination.partition(":")[2]


def enqueue(
    session: Session,
    *,
    key: str,
    destination: str,
    kind: str,
    reply: Reply,
    now: datetime,
    op: Op = "post",
    ref: str | None = None,
) -> bool:
    """Add a message unless one with this idempotency key exists; True if added."""
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)):
        return False
    payload = {"op": op, "ref": ref, "reply": reply.to_dict()}
    session.add(
        OutboxMessage(
            dedupe_key=key,
            destination=destination,
            kind=kind,
            payload=payload,
            available_at=now,
            created_at=now,
        )
    )
    session.info[OUTBOX_TOUCHED] = True
    return True


def queue_counts(session: Session) -> dict[str, int]:
    """Messages not sent yet, by status: pending, dead."""
    rows = session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.status != "sent")
        .group_by(OutboxMessage.status)
    )
    return {status: count for status, count in rows}


def unique_key(prefix: str) -> str:
    """A key for messages that are never retried as the same event (edits)."""
    return f"{prefix}:{secrets.token_hex(6)}"


def _matches(prefixes: Sequence[str]) -> ColumnElement[bool]:
    return or_(
        *(
            OutboxMessage.destination == p if ":" in p else OutboxMessage.destination.like(f"{p}%")
            for p in prefixes
        )
    )


class Outbox:
    def __init__(self, db: Database, clock: Callable[[], datetime], worker: str = "") -> None:
        self.db = db
        self.clock = clock
        self.worker = worker or f"w-{secrets.token_hex(4)}"

    async def claim(self, prefixes: Sequence[str], limit: int = 50) -> list[Delivery]:
        """Lease due messages for destinations starting with one of ``prefixes``.

        Edits and thread replies wait until the message they refer to has been
        posted; if that post is dead, a reply goes out on its own and an edit
        is dropped.
        """
        now = self.clock()

        def lease(session: Session) -> list[Delivery]:
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == "pending",
                    OutboxMessage.available_at <= now,
                    or_(OutboxMessage.leased_until.is_(None), OutboxMessage.leased_until < now),
                    _matches(prefixes),
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            if self.db.kind == "postgresql":  # replicas share the queue without blocking
                query = query.with_for_update(skip_locked=True)
            out: list[Delivery] = []
            for row in session.scalars(query):
                delivery = _delivery(session, row)
                if delivery is None:
                    continue
                row.leased_until, row.leased_by = now + LEASE, self.worker
                out.append(delivery)
            return out

        return await self.db.write(lease)

    async def sent(self, delivery: Delivery, posted: MessageRef | None = None) -> None:
        now = self.clock()

        def mark(session: Session) -> None:
            row = session.get(OutboxMessage, delivery.id)
            if row is None:
                return
            row.status, row.sent_at, row.attempts = "sent", now, row.attempts + 1
            row.leased_until = None
            if delivery.op == "post" and delivery.ref and posted is not None:
                session.add(
                    AlertMessage(
                        ref=delivery.ref,
                        platform=posted.platform,
                        channel=posted.channel,
                        message_id=posted.message_id,
                        thread_id=posted.thread_id,
                        created_at=now,
                    )
                )

        await self.db.write(mark)

    async def failed(
        self,
        delivery: Delivery,
        error: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        now = self.clock()

        def mark(session: Session) -> None:
            row = session.get(OutboxMessage, delivery.id)
            if row is None:
                return
            row.attempts += 1
            row.last_error, row.leased_until, row.leased_by = error[:1000], None, None
            if permanent or row.attempts >= MAX_ATTEMPTS:
                row.status = "dead"
                log.error("giving up on message %d to %s: %s", row.id, row.destination, error)
                return
            # Exponential backoff with jitter, unless the service said how long to wait.
            backoff = retry_after or min(5 * 2 ** (row.attempts - 1), 3600) * random.uniform(
                0.8, 1.2
            )
            row.available_at = now + timedelta(seconds=backoff)

        await self.db.write(mark)

    async def pending(self, prefixes: Sequence[str] = ("",)) -> int:
        def count(session: Session) -> int:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status == "pending", _matches(prefixes))
                )
                or 0
            )

        return await self.db.read(count)

    async def release(self) -> None:
        """Give back this worker's leases (on shutdown), so a restart resends at once."""

        def free(session: Session) -> None:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.leased_by == self.worker, OutboxMessage.status == "pending")
                .values(leased_until=None, leased_by=None)
            )

        await self.db.write(free)


def _delivery(session: Session, row: OutboxMessage) -> Delivery | None:
    payload = row.payload
    op, ref = payload.get("op", "post"), payload.get("ref")
    delivery = Delivery(
        id=row.id,
        destination=row.destination,
        kind=row.kind,
        op=op,
        ref=ref,
        reply=Reply.from_dict(payload["reply"]),
        target=None,
        attempts=row.attempts,
        # A lease that was never closed (sent, failed, released) ended in a crash.
        retried=row.attempts > 0 or row.leased_by is not None,
    )
    if op == "post" or ref is None:
        return delivery
    platform, _, channel = row.destination.partition(":")
    posted = session.scalars(
        select(AlertMessage).where(
            AlertMessage.ref == ref,
            AlertMessage.platform == platform,
            AlertMessage.channel == channel,
        )
    ).first()
    if posted is not None:
        target = MessageRef(posted.platform, posted.channel, posted.message_id, posted.thread_id)
        return replace(delivery, target=target)
    waiting = session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.destination == row.destination,
            OutboxMessage.status == "pending",
            OutboxMessage.payload["ref"].as_string() == ref,
            OutboxMessage.id < row.id,
        )
    )
    if waiting is not None:
        return None  # the original is still on its way
    if op == "reply":
        return replace(delivery, op="post", ref=None)
    row.status, row.last_error = "sent", "the message to edit was never posted"
    return None


Deliver = Callable[[Delivery], Awaitable[MessageRef | None]]


async def deliver_pending(outbox: Outbox, deliver: Deliver, prefixes: Sequence[str]) -> int:
    """One pass: send what is due, one destination after another in order. Returns the count."""
    done = 0
    for delivery in await outbox.claim(prefixes):
        try:
            posted = await deliver(delivery)
        except CalciferError as exc:
            retry_after = getattr(exc, "retry_after", None)
            await outbox.failed(
                delivery, exc.message, permanent=exc.permanent, retry_after=retry_after
            )
            continue
        await outbox.sent(delivery, posted)
        done += 1
    return done


async def run_deliveries(
    outbox: Outbox,
    deliver: Deliver,
    prefixes: Sequence[str],
    *,
    wake: asyncio.Event | None = None,
    idle: float = 2.0,
) -> None:
    """Deliver until cancelled; ``wake`` cuts the wait short when something was enqueued."""
    wake = wake or asyncio.Event()
    while True:
        try:
            await deliver_pending(outbox, deliver, prefixes)
        except Exception:  # a broken database must not end delivery for good
            log.exception("outbox delivery pass failed")
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), idle)
