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
import functools
import logging
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from calcifer_bot.db import Database
from calcifer_bot.errors import CalciferError
from calcifer_bot.models import AlertMessage, OutboxMessage
from calcifer_bot.reply import MessageRef, Reply

if TYPE_CHECKING:
    from calcifer_bot.routing import Labels, Routes

log = logging.getLogger(__name__)

Op = Literal["post", "update", "reply"]
MAX_ATTEMPTS = 10
OUTBOX_TOUCHED = "calcifer_outbox_touched"  # Session.info flag: wake the deliverers
LEASE = timedelta(seconds=60)
CLAIM_LIMIT = 50  # messages leased at once
PER_DESTINATION = 10  # … of them for one destination


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
    key: str = ""  # the idempotency key: the same on every attempt
    labels: dict[str, Any] | None = None  # what routing matched on (routing.Labels)

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
    labels: Labels | None = None,
) -> bool:
    """Add a message unless one with this idempotency key exists; True if added."""
    added = _add(session, {destination: key}, kind, reply, now, op=op, ref=ref, labels=labels)
    return bool(added)


def publish(
    session: Session,
    routes: Routes,
    labels: Labels,
    *,
    channel: str | None,
    key: str,
    reply: Reply,
    now: datetime,
    op: Op = "post",
    ref: str | None = None,
    fallback: str | None = "console",
) -> None:
    """Enqueue a message for its chat ``channel`` and every destination the routes pick.

    Each destination gets a row of its own, so one that is down delays only
    itself. Without a channel and without a route the message goes to
    ``fallback`` (alerts: the console, as they always did); with routes it
    goes only where they say.
    """
    routed = routes.destinations(labels)
    main = channel or (None if routed else fallback)
    if op == "update":  # only where a message can be edited; the rest keep what they got
        routed = [d for d in routed if d in routes.editable]
    keys = {main: key} if main else {}
    keys |= {d: f"{key}@{d}" for d in routed if d != main}
    _add(session, keys, labels.event, reply, now, op=op, ref=ref, labels=labels)


def _add(
    session: Session,
    keys: dict[str, str],
    kind: str,
    reply: Reply,
    now: datetime,
    *,
    op: Op,
    ref: str | None,
    labels: Labels | None,
) -> int:
    """One row per destination in ``keys`` (destination -> idempotency key) not there yet."""
    if not keys:
        return 0
    # One query for all: a query per key would also flush the row added before it.
    known = set(
        session.scalars(
            select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(keys.values()))
        )
    )
    payload: dict[str, Any] = {"op": op, "ref": ref, "reply": reply.to_dict()}
    if labels is not None:
        payload["labels"] = labels.to_dict()
    rows = [
        OutboxMessage(
            dedupe_key=k,
            destination=destination,
            kind=kind,
            payload=payload,
            available_at=now,
            created_at=now,
        )
        for destination, k in keys.items()
        if k not in known
    ]
    session.add_all(rows)
    if rows:
        session.info[OUTBOX_TOUCHED] = True
    return len(rows)


@dataclass(frozen=True, slots=True)
class Backlog:
    """One destination's unsent messages."""

    destination: str
    pending: int
    dead: int
    last_error: str | None  # of its newest dead message


def backlog(session: Session) -> dict[str, Backlog]:
    """Unsent messages by destination, for `status` and `notify routes`."""
    counts: dict[str, dict[str, int]] = {}
    for destination, status, count in session.execute(
        select(OutboxMessage.destination, OutboxMessage.status, func.count())
        .where(OutboxMessage.status != "sent")
        .group_by(OutboxMessage.destination, OutboxMessage.status)
    ):
        counts.setdefault(destination, {})[status] = count
    out = {}
    for destination, by_status in sorted(counts.items()):
        last = None
        if by_status.get("dead"):
            last = session.scalar(
                select(OutboxMessage.last_error)
                .where(OutboxMessage.destination == destination, OutboxMessage.status == "dead")
                .order_by(OutboxMessage.id.desc())
                .limit(1)
            )
        out[destination] = Backlog(
            destination, by_status.get("pending", 0), by_status.get("dead", 0), last
        )
    return out


def last_error(b: Backlog) -> str:
    return f" (last: {b.last_error})" if b.last_error else ""


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

    async def claim(
        self,
        prefixes: Sequence[str],
        limit: int = CLAIM_LIMIT,
        *,
        per_destination: int = PER_DESTINATION,
        exclude: Collection[str] = (),
    ) -> list[Delivery]:
        """Lease due messages for destinations starting with one of ``prefixes``.

        At most ``per_destination`` for any one destination, so a long backlog
        for one cannot crowd out the others; none for those in ``exclude``
        (their worker is still busy). Edits and thread replies wait until the
        message they refer to has been posted; if that post is dead, a reply
        goes out on its own and an edit is dropped.
        """
        now = self.clock()

        def lease(session: Session) -> list[Delivery]:
            due = (
                OutboxMessage.status == "pending",
                OutboxMessage.available_at <= now,
                or_(OutboxMessage.leased_until.is_(None), OutboxMessage.leased_until < now),
            )
            # Ids first, read past one destination's backlog to reach the others;
            # then only the rows taken are loaded (and, on PostgreSQL, locked).
            query = (
                select(OutboxMessage.id, OutboxMessage.destination)
                .where(*due, _matches(prefixes))
                .order_by(OutboxMessage.id)
                .limit(limit * 4)
            )
            if exclude:
                query = query.where(OutboxMessage.destination.not_in(list(exclude)))
            ids: list[int] = []
            taken: Counter[str] = Counter()
            for id_, destination in session.execute(query):
                if taken[destination] < per_destination:
                    taken[destination] += 1
                    ids.append(id_)
                    if len(ids) == limit:
                        break
            rows = select(OutboxMessage).where(OutboxMessage.id.in_(ids), *due)
            if self.db.kind == "postgresql":  # replicas share the queue without blocking
                rows = rows.with_for_update(skip_locked=True)
            out: list[Delivery] = []
            for row in session.scalars(rows.order_by(OutboxMessage.id)):
                delivery = _delivery(session, row)
                if delivery is None:
                    continue
                row.leased_until, row.leased_by = now + LEASE, self.worker
                out.append(delivery)
            return out

        return await self.db.write(lease)

    async def renew(self, deliveries: Sequence[Delivery]) -> None:
        """Extend this worker's leases: a slow destination's queue outlasts one lease."""
        ids = [d.id for d in deliveries]
        until = self.clock() + LEASE

        def extend(session: Session) -> None:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.leased_by == self.worker)
                .values(leased_until=until)
            )

        if ids:
            await self.db.write(extend)

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
    ) -> datetime | None:
        """Count a failed attempt; returns when the message is tried again (None: dead)."""
        now = self.clock()

        def mark(session: Session) -> datetime | None:
            row = session.get(OutboxMessage, delivery.id)
            if row is None:
                return None
            row.attempts += 1
            row.last_error, row.leased_until, row.leased_by = error[:1000], None, None
            if permanent or row.attempts >= MAX_ATTEMPTS:
                row.status = "dead"
                log.error("giving up on message %d to %s: %s", row.id, row.destination, error)
                return None
            # Exponential backoff with jitter, unless the service said how long to wait.
            backoff = retry_after or min(5 * 2 ** (row.attempts - 1), 3600) * random.uniform(
                0.8, 1.2
            )
            row.available_at = now + timedelta(seconds=backoff)
            return row.available_at

        return await self.db.write(mark)

    async def postpone(self, deliveries: Sequence[Delivery], until: datetime) -> None:
        """Give leased messages back, due at ``until``; no attempt is counted."""
        ids = [d.id for d in deliveries]
        if not ids:
            return

        def free(session: Session) -> None:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
                .values(available_at=until, leased_until=None, leased_by=None)
            )

        await self.db.write(free)

    async def retry_dead(self, destinations: Sequence[str]) -> int:
        """Dead messages for these destinations (prefixes, as in ``claim``) are tried afresh."""
        now = self.clock()

        def revive(session: Session) -> int:
            result = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == "dead", _matches(destinations))
                .values(status="pending", attempts=0, available_at=now, last_error=None)
            )
            session.info[OUTBOX_TOUCHED] = True
            return int(getattr(result, "rowcount", 0) or 0)

        return await self.db.write(revive)

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
        key=row.dedupe_key,
        labels=payload.get("labels"),
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
Busy = dict[str, asyncio.Task[int]]  # destination -> the task sending its messages


class Postpone(Exception):
    """Raised by a deliverer that did not try (its own rate limit): due again in ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"postponed by {seconds:.1f} s")
        self.seconds = seconds


async def deliver_pending(
    outbox: Outbox,
    deliver: Deliver,
    prefixes: Sequence[str],
    *,
    stop: asyncio.Event | None = None,
) -> int:
    """One pass: lease what is due and send it, destinations side by side. The count sent."""
    queues = _by_destination(await outbox.claim(prefixes))
    return sum(await asyncio.gather(*(_serve(outbox, deliver, q, stop) for q in queues.values())))


def _by_destination(batch: list[Delivery]) -> dict[str, list[Delivery]]:
    queues: dict[str, list[Delivery]] = {}
    for delivery in batch:
        queues.setdefault(delivery.destination, []).append(delivery)
    return queues


async def _serve(
    outbox: Outbox, deliver: Deliver, queue: list[Delivery], stop: asyncio.Event | None
) -> int:
    """One destination's leased messages, in order. The count sent.

    When the destination fails for now (or asks us to wait), the rest of its
    queue waits as long, untried. ``stop`` ends it after the message being
    sent: a send is never cut in half, which is what would send it twice.
    """
    done = 0
    renewed = outbox.clock()
    for n, delivery in enumerate(queue):
        if stop is not None and stop.is_set():
            await outbox.postpone(queue[n:], outbox.clock())
            break
        if outbox.clock() - renewed > LEASE / 2:
            await outbox.renew(queue[n:])
            renewed = outbox.clock()
        try:
            posted = await deliver(delivery)
        except Postpone as wait:
            await outbox.postpone(queue[n:], outbox.clock() + timedelta(seconds=wait.seconds))
            break
        except CalciferError as exc:
            retry_after = getattr(exc, "retry_after", None)
            again = await outbox.failed(
                delivery, exc.message, permanent=exc.permanent, retry_after=retry_after
            )
            if not exc.permanent and again is not None:
                await outbox.postpone(queue[n + 1 :], again)
                break
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
    stop: asyncio.Event | None = None,
    idle: float = 2.0,
) -> None:
    """Deliver until ``stop`` is set (or cancelled); ``wake`` cuts the wait short.

    Each destination's messages are sent by a task of their own, so a
    destination that takes its time never holds up another; when one's task
    finishes, or a lease came back full, the next claim follows at once.
    """
    wake = wake or asyncio.Event()
    stop = stop or asyncio.Event()
    busy: Busy = {}
    try:
        while not stop.is_set():
            wake.clear()
            full = False
            try:
                batch = await outbox.claim(prefixes, exclude=tuple(busy))
            except Exception:  # a broken database must not end delivery for good
                log.exception("outbox delivery pass failed")
                batch = []
            full = len(batch) >= CLAIM_LIMIT
            for destination, queue in _by_destination(batch).items():
                task = asyncio.create_task(_serve(outbox, deliver, queue, stop))
                busy[destination] = task
                task.add_done_callback(functools.partial(_finished, busy, destination, wake))
            if not full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), idle)
    finally:
        # Stopping (or cancelled): each destination finishes the message it is sending.
        stop.set()
        await asyncio.gather(*busy.values(), return_exceptions=True)


def _finished(
    busy: dict[str, asyncio.Task[int]],
    destination: str,
    wake: asyncio.Event,
    task: asyncio.Task[int],
) -> None:
    busy.pop(destination, None)
    if not task.cancelled() and task.exception() is not None:
        log.error("delivery to %s failed", destination, exc_info=task.exception())
    wake.set()  # its destination may have more waiting
