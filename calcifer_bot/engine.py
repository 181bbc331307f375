"""The alert engine: check results in, endpoint states, incidents and outbox messages out.

Everything an observation changes (the result row, the endpoint's streaks, an
incident opened or resolved, the messages announcing it) is written in one
transaction, so a restart in the middle of an outage neither repeats nor loses
an alert: the state lives in the database, not in memory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import String, cast, func, insert, literal, select
from sqlalchemy.orm import Session

from calcifer_bot import alerts
from calcifer_bot.config import Settings
from calcifer_bot.db import Database
from calcifer_bot.errors import NotFound, UsageError
from calcifer_bot.models import (
    CheckResult,
    Endpoint,
    EndpointGroup,
    Incident,
    MaintenanceWindow,
)
from calcifer_bot.outbox import OUTBOX_TOUCHED, Op, publish, unique_key
from calcifer_bot.parser import format_duration
from calcifer_bot.reply import Reply, Status
from calcifer_bot.routing import Routes, endpoint_labels

log = logging.getLogger(__name__)

T = TypeVar("T")

PREFETCH_TIMEOUT_S = 5.0  # an alert waits this long at most for its context
RECENT = 21  # results kept for flap detection: 20 state changes, as Nagios does
FLAP_MIN_RESULTS = 10


@dataclass(frozen=True, slots=True)
class Observation:
    endpoint_id: int
    at: datetime
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


def percent_state_change(recent: str) -> float:
    """Nagios-style flap measure: share of result changes, newer ones weighted more."""
    changes = [a != b for a, b in itertools.pairwise(recent)]
    if len(changes) < 2:
        return 0.0
    n = len(changes)
    weights = [0.8 + 0.4 * i / (n - 1) for i in range(n)]
    return 100.0 * sum(w for w, c in zip(weights, changes, strict=True) if c) / sum(weights)


def maintenance_active(window: MaintenanceWindow, now: datetime) -> bool:
    start = _occurrence(window, now)
    return start is not None and now < start + timedelta(seconds=window.duration_s)


def _last_end(window: MaintenanceWindow, now: datetime) -> datetime | None:
    """End of the window's latest occurrence that is over by ``now``."""
    start = _occurrence(window, now)
    if start is None:
        return None
    length = timedelta(seconds=window.duration_s)
    if start + length <= now:
        return start + length
    if window.every is None:
        return None
    previous = start - timedelta(days=1 if window.every == "day" else 7)
    return previous + length if previous >= window.starts_at else None


def _occurrence(window: MaintenanceWindow, now: datetime) -> datetime | None:
    """Start of the window's latest occurrence at or before ``now``."""
    if now < window.starts_at:
        return None
    if window.every is None:
        return window.starts_at
    period = timedelta(days=1 if window.every == "day" else 7)
    return window.starts_at + period * ((now - window.starts_at) // period)


class Engine:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Callable[[], datetime],
        on_enqueue: Callable[[], None] = lambda: None,
        routes: Routes | None = None,
    ) -> None:
        self.settings = settings
        self.routes = routes or Routes()
        self.policy = settings.monitoring
        self.db = db
        self.clock = clock
        self.on_enqueue = on_enqueue

    # -- results ------------------------------------------------------------

    async def apply(self, observations: Iterable[Observation]) -> dict[int, float]:
        """Record a batch of results; returns each endpoint's delay to its next check."""
        batch = sorted(observations, key=lambda o: o.at)
        if not batch:
            return {}
        await self._prefetch_context(batch)
        return await self._write(lambda session: self._apply(session, batch))

    async def _prefetch_context(self, batch: list[Observation]) -> None:
        """Let context providers gather what an alert in this batch would say."""
        failing = {o.endpoint_id for o in batch if not o.ok}
        if not failing or not alerts.CONTEXT_PREFETCH:
            return

        def services(session: Session) -> set[str]:
            query = select(Endpoint.service).where(
                Endpoint.id.in_(failing), Endpoint.service.is_not(None)
            )
            return {s for s in session.scalars(query) if s}

        found = await self.db.read(services)
        for prefetch in alerts.CONTEXT_PREFETCH if found else ():
            try:
                await asyncio.wait_for(prefetch(found, batch[-1].at), PREFETCH_TIMEOUT_S)
            except Exception:  # context is a courtesy: it must never cost an alert
                log.warning("alert context %s failed", prefetch.__qualname__, exc_info=True)

    def _apply(self, session: Session, batch: list[Observation]) -> dict[int, float]:
        ids = {o.endpoint_id for o in batch}
        endpoints = {e.id: e for e in session.scalars(select(Endpoint).where(Endpoint.id.in_(ids)))}
        rows = [
            {
                "endpoint_id": o.endpoint_id,
                "checked_at": o.at,
                "ok": o.ok,
                "latency_ms": o.latency_ms,
                "error": o.error,
            }
            for o in batch
            if o.endpoint_id in endpoints  # removed while its check ran
        ]
        if rows:
            session.execute(insert(CheckResult), rows)
        delays: dict[int, float] = {}
        for o in batch:
            ep = endpoints.get(o.endpoint_id)
            if ep is not None:
                delays[ep.id] = self._step(session, ep, o)
        return delays

    def _step(self, session: Session, ep: Endpoint, o: Observation) -> float:
        ep.last_checked_at = o.at
        if o.ok:
            ep.last_error = o.error  # a warning, if anything
            if o.latency_ms is not None:
                ep.last_latency_ms = o.latency_ms
            if ep.ok_streak == 0:
                ep.streak_since = o.at
            ep.ok_streak, ep.fail_streak = ep.ok_streak + 1, 0
        else:
            ep.last_error = o.error
            if ep.fail_streak == 0:
                ep.streak_since = o.at
            ep.fail_streak, ep.ok_streak = ep.fail_streak + 1, 0
        ep.recent = (ep.recent + ("1" if o.ok else "0"))[-RECENT:]
        self._flap(session, ep, o.at)

        if ep.state != "down" and ep.fail_streak >= ep.failures:
            self._went_down(session, ep, o)
        elif ep.state == "down" and ep.ok_streak >= ep.successes:
            self._came_up(session, ep, o.at)
        elif ep.state == "unknown" and o.ok:
            ep.state, ep.state_since = "up", o.at

        changing = (ep.state != "down" and ep.fail_streak > 0) or (
            ep.state == "down" and ep.ok_streak > 0
        )
        if changing:
            return min(self.policy.retry_interval.total_seconds(), ep.interval_s)
        return ep.interval_s

    # -- going down ---------------------------------------------------------

    def _went_down(self, session: Session, ep: Endpoint, o: Observation) -> None:
        ep.state, ep.state_since = "down", ep.streak_since or o.at
        incident = Incident(
            endpoint_id=ep.id,
            started_at=ep.state_since,
            detected_at=o.at,
            error=o.error,
            latency_before_ms=ep.last_latency_ms,
        )
        session.add(incident)
        session.flush()
        incident.endpoint = ep
        reason = self.suppression(session, ep, o.at)
        if reason:
            incident.suppressed = reason
            return
        self._announce(session, ep, incident, o.at)

    def _announce(self, session: Session, ep: Endpoint, incident: Incident, now: datetime) -> None:
        """Post the alert, or join it to the message it belongs with."""
        incident.suppressed = None
        parent = self._down_parent(session, ep)
        if parent is not None:
            incident.parent_id, incident.suppressed = parent.id, "parent"
            incident.alert_ref = parent.alert_ref
            if parent.alert_ref:
                self._update(session, ep, parent.alert_ref, now)
            return
        group = session.get(EndpointGroup, ep.group_name) if ep.group_name else None
        if group is not None and group.quorum > 1:
            self._quorum_down(session, ep, group, incident, now)
            return
        # Children that went down first keep their own message and are listed in this one.
        children = self._open_children(session, ep)
        for child in children:
            child.parent_id = incident.id
        lead = None if children else self._recent_alert(session, ep, now)
        if lead is not None and lead.alert_ref:
            incident.alert_ref = lead.alert_ref
            self._update(session, ep, lead.alert_ref, now)
            return
        incident.alert_ref = f"alert:{incident.id}"
        self._post(session, ep, incident.alert_ref, "alert", now, key=f"alert:{incident.id}")

    def suppression(
        self, session: Session, ep: Endpoint, now: datetime, *, flapping: bool = True
    ) -> str | None:
        """Why an alert for ``ep`` must not go out now, if it must not."""
        if ep.muted_until is not None and ep.muted_until > now:
            return "muted"
        windows = session.scalars(
            select(MaintenanceWindow).where(MaintenanceWindow.endpoint_id == ep.id)
        )
        if any(maintenance_active(w, now) for w in windows):
            return "maintenance"
        if flapping and ep.flapping:
            return "flapping"
        return None

    def _down_parent(self, session: Session, ep: Endpoint) -> Incident | None:
        """The open incident of the nearest ``--depends-on`` ancestor that is down."""
        seen = {ep.id}
        parent_id = ep.parent_id
        while parent_id is not None and parent_id not in seen:
            seen.add(parent_id)
            parent = session.get(Endpoint, parent_id)
            if parent is None:
                return None
            if parent.state == "down":
                incident = open_incident(session, parent.id)
                if incident is not None and incident.suppressed == "parent" and incident.parent_id:
                    # The parent is folded itself: join the incident that carries the message.
                    incident = session.get(Incident, incident.parent_id) or incident
                if incident is not None:
                    return incident
            parent_id = parent.parent_id
        return None

    def _open_children(self, session: Session, ep: Endpoint) -> list[Incident]:
        return list(
            session.scalars(
                select(Incident)
                .join(Endpoint, Incident.endpoint_id == Endpoint.id)
                .where(
                    Endpoint.parent_id == ep.id,
                    Incident.resolved_at.is_(None),
                    Incident.parent_id.is_(None),
                )
            )
        )

    def _recent_alert(self, session: Session, ep: Endpoint, now: datetime) -> Incident | None:
        """An open alert to the same channel that went out within the grouping window.

        The window is counted from the message's first alert, so a slow cascade
        does not keep growing one message.
        """
        since = now - self.policy.group_window
        candidates = session.scalars(
            select(Incident)
            .join(Endpoint, Incident.endpoint_id == Endpoint.id)
            .where(
                Incident.resolved_at.is_(None),
                Incident.suppressed.is_(None),
                Incident.alert_ref == literal("alert:") + cast(Incident.id, String),
                Incident.detected_at >= since,
                Incident.endpoint_id != ep.id,
            )
            .order_by(Incident.id)
        )
        mine = self.destination(ep)
        return next((i for i in candidates if self.destination(i.endpoint) == mine), None)

    def _quorum_down(
        self,
        session: Session,
        ep: Endpoint,
        group: EndpointGroup,
        incident: Incident,
        now: datetime,
    ) -> None:
        incident.suppressed = "quorum"
        if group.alert_ref:
            incident.alert_ref = group.alert_ref
            self._update(session, ep, group.alert_ref, now)
            return
        down = list(
            session.scalars(
                select(Incident)
                .join(Endpoint, Incident.endpoint_id == Endpoint.id)
                .where(Endpoint.group_name == group.name, Incident.resolved_at.is_(None))
            )
        )
        if len(down) < group.quorum:
            return
        group.alert_ref = f"group:{group.name}:{incident.id}"
        group.down_since = min(i.started_at for i in down)
        for member in down:
            member.alert_ref = group.alert_ref
        self._post(session, ep, group.alert_ref, "alert", now, key=group.alert_ref)

    # -- coming back --------------------------------------------------------

    def _came_up(self, session: Session, ep: Endpoint, now: datetime) -> None:
        ep.state, ep.state_since = "up", ep.streak_since or now
        incident = open_incident(session, ep.id)
        if incident is None:
            return
        incident.resolved_at = ep.state_since
        # Children still down now that their parent is back are outages of their own.
        for child in session.scalars(
            select(Incident).where(
                Incident.parent_id == incident.id,
                Incident.suppressed == "parent",
                Incident.resolved_at.is_(None),
            )
        ):
            child.parent_id, child.alert_ref = None, None
            self._release(session, child.endpoint, "parent", now)
        ref = incident.alert_ref
        if ref is None:
            return  # never announced: muted, in maintenance or flapping throughout
        if ref.startswith("group:"):
            self._quorum_up(session, ep, ref, now)
        elif incident.suppressed is None:
            self._reply(
                session,
                ep,
                ref,
                alerts.recovery(incident),
                "recovery",
                now,
                key=f"recovery:{incident.id}",
            )
        self._update(session, ep, ref, now)
        parent = session.get(Incident, incident.parent_id) if incident.parent_id else None
        if parent is not None and parent.alert_ref and parent.alert_ref != ref:
            self._update(session, ep, parent.alert_ref, now)

    def _quorum_up(self, session: Session, ep: Endpoint, ref: str, now: datetime) -> None:
        group = session.get(EndpointGroup, ep.group_name) if ep.group_name else None
        if group is None or group.alert_ref != ref:
            return
        down = session.scalar(
            select(func.count())
            .select_from(Endpoint)
            .where(Endpoint.group_name == group.name, Endpoint.state == "down")
        )
        if (down or 0) >= group.quorum:
            return
        lasted = format_duration(now - (group.down_since or now))
        group.alert_ref, group.down_since = None, None
        text = f"Group {group.name} is back: {down} down, alerts at {group.quorum} ({lasted})."
        self._reply(
            session,
            ep,
            ref,
            Reply(text, title=f"Group {group.name} recovered", status=Status.OK),
            "recovery",
            now,
            key=f"recovery:{ref}",
        )

    # -- flapping -----------------------------------------------------------

    def _flap(self, session: Session, ep: Endpoint, now: datetime) -> None:
        if len(ep.recent) < FLAP_MIN_RESULTS:
            return
        change = percent_state_change(ep.recent)
        if not ep.flapping and change >= self.policy.flap_high:
            ep.flapping = True
            if self.suppression(session, ep, now, flapping=False):
                return  # muted or in maintenance: not a word, as for its other alerts
            ep.flap_ref = f"flap:{ep.id}:{int(now.timestamp())}"
            reply = Reply(
                title=f"{ep.name} is flapping",
                text=f"{ep.name} changed state in {change:.0f}% of its last {len(ep.recent)} "
                "checks. Alerts for it are held until it settles; history is kept.",
                status=Status.WARNING,
            )
            self._post(session, ep, ep.flap_ref, "flapping", now, reply=reply, key=ep.flap_ref)
        elif ep.flapping and change < self.policy.flap_low:
            ep.flapping = False
            ref, ep.flap_ref = ep.flap_ref, None
            if ref:
                state = "down" if ep.fail_streak else "up"
                reply = Reply(
                    title=f"{ep.name} is stable again",
                    text=f"{ep.name} has settled and is {state}.",
                    status=Status.ERROR if state == "down" else Status.OK,
                )
                self._reply(session, ep, ref, reply, "flapping", now, key=f"{ref}:stable")
                done = Reply(
                    title=f"{ep.name} was flapping",
                    text=f"Flapping until {now:%Y-%m-%d %H:%M} UTC; it is {state} now.",
                    status=Status.INFO,
                )
                self._edit(session, ep, ref, done, now)
            self._release(session, ep, "flapping", now)

    # -- actions from chat --------------------------------------------------

    async def ack(self, incident_id: int, by: str, note: str | None) -> Incident:
        now = self.clock()

        def run(session: Session) -> Incident:
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise NotFound(
                    f"there is no incident #{incident_id}; `incidents --open` lists them"
                )
            if incident.resolved_at is not None:
                raise UsageError(f"incident #{incident_id} is already resolved")
            if incident.acked_at is not None:
                raise UsageError(
                    f"incident #{incident_id} was already acknowledged by {incident.acked_by}"
                )
            together = [incident]
            if incident.alert_ref:
                together = list(
                    session.scalars(
                        select(Incident).where(
                            Incident.alert_ref == incident.alert_ref,
                            Incident.resolved_at.is_(None),
                        )
                    )
                )
            for i in together:
                i.acked_by, i.acked_at, i.ack_note = by, now, note
            ep = incident.endpoint
            if incident.alert_ref:
                why = f": {note}" if note else ""
                reply = Reply(f"Acknowledged by {by}{why}. Reminders stop.", status=Status.INFO)
                self._reply(
                    session, ep, incident.alert_ref, reply, "ack", now, key=f"ack:{incident.id}"
                )
                self._update(session, ep, incident.alert_ref, now)
            return incident

        return await self._write(run)

    async def mute(self, name: str, until: datetime, reason: str | None, by: str) -> Endpoint:
        now = self.clock()

        def run(session: Session) -> Endpoint:
            ep = endpoint_named(session, name)
            ep.muted_until, ep.mute_reason, ep.muted_by = until, reason, by
            # The open alert says who muted it (a button press included), in its thread too.
            incident = open_incident(session, ep.id)
            if incident is not None and incident.alert_ref:
                why = f": {reason}" if reason else ""
                text = f"Muted by {by} until {until:%Y-%m-%d %H:%M} UTC{why}."
                key = unique_key(f"mute:{incident.id}")
                self._reply(session, ep, incident.alert_ref, Reply(text), "mute", now, key=key)
                self._update(session, ep, incident.alert_ref, now)
            return ep

        return await self._write(run)

    async def unmute(self, name: str, by: str) -> Endpoint:
        now = self.clock()

        def run(session: Session) -> Endpoint:
            ep = endpoint_named(session, name)
            if ep.muted_until is None or ep.muted_until <= now:
                raise UsageError(f"{name} is not muted")
            ep.muted_until = ep.mute_reason = ep.muted_by = None
            self._release(session, ep, "muted", now)
            return ep

        return await self._write(run)

    # -- housekeeping: expiries and reminders ------------------------------

    async def housekeeping(self) -> None:
        now = self.clock()
        await self._write(lambda session: self._housekeeping(session, now))

    def _housekeeping(self, session: Session, now: datetime) -> None:
        for ep in session.scalars(
            select(Endpoint).where(Endpoint.muted_until.is_not(None), Endpoint.muted_until <= now)
        ):
            ended = ep.muted_until
            ep.muted_until = ep.mute_reason = ep.muted_by = None
            self._info(
                session,
                ep,
                f"The mute of {ep.name} has ended; alerts are back on.",
                now,
                key=f"unmuted:{ep.id}:{ended.isoformat() if ended else ''}",
            )
            self._release(session, ep, "muted", now)

        for window in session.scalars(select(MaintenanceWindow)):
            end = _last_end(window, now)
            if end is None or end < window.created_at:
                continue
            if window.announced_end is not None and window.announced_end >= end:
                continue
            window.announced_end = end
            owner = session.get(Endpoint, window.endpoint_id)
            if owner is None:
                continue
            self._info(
                session,
                owner,
                f"Maintenance of {owner.name} is over; alerts are back on.",
                now,
                key=f"maintenance-end:{window.id}:{end.isoformat()}",
            )
            self._release(session, owner, "maintenance", now)
            if window.every is None:
                session.delete(window)

        self._remind(session, now)

    def _remind(self, session: Session, now: datetime) -> None:
        for incident in session.scalars(
            select(Incident).where(
                Incident.resolved_at.is_(None),
                Incident.acked_at.is_(None),
                Incident.suppressed.is_(None),
                Incident.alert_ref.is_not(None),
            )
        ):
            ep = incident.endpoint
            every = timedelta(seconds=ep.remind_s) if ep.remind_s else self.policy.reminder
            if every is None:
                continue
            last = incident.last_reminder_at or incident.detected_at or incident.started_at
            if now - last < every:
                continue
            incident.last_reminder_at = now
            self._reply(
                session,
                ep,
                incident.alert_ref or "",
                alerts.reminder(incident, now),
                "reminder",
                now,
                key=f"reminder:{incident.id}:{int(now.timestamp())}",
            )

    def _release(self, session: Session, ep: Endpoint, reason: str, now: datetime) -> None:
        """A suppression ended: an outage that was never announced is announced now."""
        incident = open_incident(session, ep.id)
        if incident is None or incident.suppressed != reason:
            return
        still = self.suppression(session, ep, now)
        if still:
            incident.suppressed = still
            return
        self._announce(session, ep, incident, now)

    # -- messages -----------------------------------------------------------

    def destination(self, ep: Endpoint) -> str:
        """The chat channel an endpoint alerts to; alerts to one channel are grouped."""
        return self.channel(ep) or "console"

    def channel(self, ep: Endpoint) -> str | None:
        return ep.channel or self.settings.alert_channel

    def _where(self, session: Session, ref: str, ep: Endpoint) -> str | None:
        """Edits and thread replies go where the message was posted: its first incident's channel.

        A folded child or a group member may alert to another channel than
        the message it joins.
        """
        kind, _, rest = ref.partition(":")
        if kind in ("alert", "group"):
            lead = session.get(Incident, int(rest.rsplit(":", 1)[-1]))
            if lead is not None:
                return self.channel(lead.endpoint)
        return self.channel(ep)

    def _publish(
        self,
        session: Session,
        ep: Endpoint,
        event: str,
        reply: Reply,
        now: datetime,
        *,
        key: str,
        channel: str | None,
        op: Op = "post",
        ref: str | None = None,
    ) -> None:
        labels = endpoint_labels(ep, event)
        publish(
            session,
            self.routes,
            labels,
            channel=channel,
            key=key,
            reply=reply,
            now=now,
            op=op,
            ref=ref,
        )

    def _post(
        self,
        session: Session,
        ep: Endpoint,
        ref: str,
        kind: str,
        now: datetime,
        *,
        key: str,
        reply: Reply | None = None,
    ) -> None:
        if reply is None:
            session.flush()
            reply = alerts.render(session, ref, now)
        self._publish(session, ep, kind, reply, now, key=key, channel=self.channel(ep), ref=ref)

    def _update(self, session: Session, ep: Endpoint, ref: str, now: datetime) -> None:
        session.flush()
        self._edit(session, ep, ref, alerts.render(session, ref, now), now)

    def _edit(self, session: Session, ep: Endpoint, ref: str, reply: Reply, now: datetime) -> None:
        self._publish(
            session,
            ep,
            "update",
            reply,
            now,
            key=unique_key(f"update:{ref}"),
            channel=self._where(session, ref, ep),
            op="update",
            ref=ref,
        )

    def _reply(
        self,
        session: Session,
        ep: Endpoint,
        ref: str,
        reply: Reply,
        kind: str,
        now: datetime,
        *,
        key: str,
    ) -> None:
        channel = self._where(session, ref, ep)
        self._publish(session, ep, kind, reply, now, key=key, channel=channel, op="reply", ref=ref)

    def _info(self, session: Session, ep: Endpoint, text: str, now: datetime, *, key: str) -> None:
        reply = Reply(text, status=Status.INFO)
        self._publish(session, ep, "info", reply, now, key=key, channel=self.channel(ep))

    async def _write(self, fn: Callable[[Session], T]) -> T:
        def run(session: Session) -> tuple[T, bool]:
            return fn(session), bool(session.info.get(OUTBOX_TOUCHED))

        result, touched = await self.db.write(run)
        if touched:
            self.on_enqueue()
        return result


def open_incident(session: Session, endpoint_id: int) -> Incident | None:
    return session.scalars(
        select(Incident)
        .where(Incident.endpoint_id == endpoint_id, Incident.resolved_at.is_(None))
        .order_by(Incident.id.desc())
    ).first()


def endpoint_named(session: Session, name: str) -> Endpoint:
    ep = session.scalars(select(Endpoint).where(Endpoint.name == name)).first()
    if ep is None:
        raise NotFound(f"there is no endpoint named {name!r}; `endpoint list` shows them")
    return ep
