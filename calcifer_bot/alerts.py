"""What alert messages say. Pure rendering: the engine decides when to send them.

One chat message (an outbox ``ref``) may stand for several incidents: endpoints
that went down within the grouping window, children folded into their
``--depends-on`` parent, or the members of a group with a quorum. The message
is always rendered from the incidents' current state, so an edit after a
recovery, an ack or a newly folded child simply renders it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from calcifer_bot.models import Endpoint, EndpointGroup, Incident, WorkItem
from calcifer_bot.parser import counted, format_duration
from calcifer_bot.reply import Button, Field, Reply, Status

# Lines of context for an outage of a service: recent merges, open work items.
# Each provider gets (session, service, since) and returns short lines; the Git
# integration adds its "merged 3 min before" provider here.
ContextProvider = Callable[[Session, str, datetime], list[str]]
CONTEXT_PROVIDERS: list[ContextProvider] = []


def context_provider(fn: ContextProvider) -> ContextProvider:
    CONTEXT_PROVIDERS.append(fn)
    return fn


# Providers run inside the engine's transaction, so they must not wait on I/O.
# What they need from outside (git history) a prefetch gathers first: it gets
# the services that may be about to alert, and the time.
ContextPrefetch = Callable[[set[str], datetime], Awaitable[None]]
CONTEXT_PREFETCH: list[ContextPrefetch] = []


def context_prefetch(fn: ContextPrefetch) -> ContextPrefetch:
    CONTEXT_PREFETCH.append(fn)
    return fn


@context_provider
def open_work_items(session: Session, service: str, since: datetime) -> list[str]:
    items = session.scalars(
        select(WorkItem)
        .where(WorkItem.service == service, WorkItem.status == "open")
        .order_by(WorkItem.id.desc())
        .limit(3)
    )
    return [f"open work item #{w.id}: {w.title} (`{w.branch}`)" for w in items]


def target_of(endpoint: Endpoint) -> str:
    from integrations.monitoring import Target

    return Target.from_stored(
        endpoint.kind, endpoint.target, endpoint.port, endpoint.timeout_s, endpoint.options
    ).display


def ago(then: datetime, now: datetime) -> str:
    return f"{then:%Y-%m-%d %H:%M} UTC ({format_duration(now - then)} ago)"


def _context(session: Session, incident: Incident) -> list[str]:
    service = incident.endpoint.service
    if not service:
        return []
    return [line for p in CONTEXT_PROVIDERS for line in p(session, service, incident.started_at)]


def render(session: Session, ref: str, now: datetime) -> Reply:
    """The message named ``ref`` as it should read now."""
    incidents = list(
        session.scalars(select(Incident).where(Incident.alert_ref == ref).order_by(Incident.id))
    )
    if ref.startswith("group:"):
        return _render_group(session, ref, incidents, now)
    primary = [i for i in incidents if i.suppressed != "parent"]
    # Folded children share the ref; children that were down first keep their own message.
    children = list(
        session.scalars(
            select(Incident)
            .where(Incident.parent_id.in_([i.id for i in primary]))
            .order_by(Incident.id)
        )
    )
    if len(primary) == 1:
        return _render_one(session, primary[0], children, now)
    return _render_many(primary, children, now)


def _render_one(
    session: Session, incident: Incident, children: list[Incident], now: datetime
) -> Reply:
    ep = incident.endpoint
    fields = [Field("Target", f"`{target_of(ep)}`"), Field("Error", incident.error or "unknown")]
    if incident.latency_before_ms is not None:
        fields.append(Field("Latency before", f"{incident.latency_before_ms:.0f} ms"))
    if ep.service:
        fields.append(Field("Service", ep.service))
    affected = [c for c in children if c.resolved_at is None]
    if affected:
        names = ", ".join(c.endpoint.name for c in affected[:10])
        more = f" and {len(affected) - 10} more" if len(affected) > 10 else ""
        fields.append(
            Field(f"{counted(len(affected), 'dependent endpoint')} affected", names + more, False)
        )
    context = _context(session, incident)
    if context:
        fields.append(Field("Recent changes", "\n".join(context), inline=False))
    if incident.resolved_at is not None:
        lasted = format_duration(incident.resolved_at - incident.started_at)
        return Reply(
            title=f"Resolved: {ep.name} was down for {lasted}",
            text=f"{ep.name} was down from {incident.started_at:%Y-%m-%d %H:%M} to "
            f"{incident.resolved_at:%H:%M} UTC ({lasted}).",
            status=Status.OK,
            fields=tuple(fields),
            footer=f"Incident #{incident.id}",
        )
    text = f"{ep.name} is down since {ago(incident.started_at, now)}."
    if affected:
        text = f"{ep.name} down: {len(affected) + 1} endpoints affected. " + text
    return Reply(
        title=f"{ep.name} is down",
        text=text,
        status=Status.ERROR,
        fields=tuple(fields),
        footer=_footer(incident, now),
        buttons=(
            () if incident.acked_at else (Button("Acknowledge", f"ack {incident.id}", "primary"),)
        )
        + (Button("Mute 1 h", f"mute {ep.name} 1h"), Button("Re-check now", f"check {ep.name}")),
    )


def _footer(incident: Incident, now: datetime) -> str:
    footer = f"Incident #{incident.id}"
    if incident.acked_by:
        note = f": {incident.ack_note}" if incident.ack_note else ""
        footer += f" · acknowledged by {incident.acked_by}{note}"
    ep = incident.endpoint
    if ep.muted_until is not None and ep.muted_until > now:
        footer += f" · muted by {ep.muted_by} until {ep.muted_until:%H:%M} UTC"
    return footer


def _line(incident: Incident, now: datetime) -> str:
    ep = incident.endpoint
    if incident.resolved_at is not None:
        lasted = format_duration(incident.resolved_at - incident.started_at)
        return f"✓ {ep.name} (`{target_of(ep)}`): back up after {lasted}"
    return f"✗ {ep.name} (`{target_of(ep)}`): {incident.error or 'down'}"


def _render_many(primary: list[Incident], children: list[Incident], now: datetime) -> Reply:
    down = [i for i in primary if i.resolved_at is None]
    lines = [_line(i, now) for i in primary]
    if children:
        lines.append(f"{counted(len(children), 'dependent endpoint')} folded in.")
    lead = primary[0]
    if not down:
        return Reply(
            title=f"Resolved: {len(primary)} endpoints were down",
            text="\n".join(lines),
            status=Status.OK,
            footer=f"Incidents #{', #'.join(str(i.id) for i in primary)}",
        )
    return Reply(
        title=f"{len(down)} of {len(primary)} endpoints down",
        text=f"Since {ago(lead.started_at, now)}.\n" + "\n".join(lines),
        status=Status.ERROR,
        footer=_footer(lead, now),
        buttons=(() if lead.acked_at else (Button("Acknowledge", f"ack {lead.id}", "primary"),)),
    )


def _render_group(session: Session, ref: str, incidents: list[Incident], now: datetime) -> Reply:
    name = ref.split(":")[1]
    group = session.get(EndpointGroup, name)
    members = list(session.scalars(select(Endpoint).where(Endpoint.group_name == name)))
    down = [m for m in members if m.state == "down"]
    quorum = group.quorum if group else 1
    lines = [_line(i, now) for i in incidents]
    lead = incidents[0] if incidents else None
    if group is None or group.alert_ref != ref:
        return Reply(
            title=f"Resolved: group {name} recovered",
            text="\n".join(lines),
            status=Status.OK,
            footer=f"{len(down)} of {len(members)} down now; alerts at {quorum}",
        )
    since = f"Since {ago(group.down_since, now)}.\n" if group.down_since else ""
    return Reply(
        title=f"Group {name}: {len(down)} of {len(members)} down",
        text=since + "\n".join(lines),
        status=Status.ERROR,
        footer=f"Alerts when {quorum} of {len(members)} are down"
        + (f" · {_footer(lead, now)}" if lead else ""),
        buttons=(Button("Acknowledge", f"ack {lead.id}", "primary"),)
        if lead and not lead.acked_at
        else (),
    )


def recovery(incident: Incident) -> Reply:
    assert incident.resolved_at is not None
    lasted = format_duration(incident.resolved_at - incident.started_at)
    return Reply(
        title=f"{incident.endpoint.name} is back up",
        text=f"{incident.endpoint.name} recovered after {lasted} of downtime.",
        status=Status.OK,
    )


def reminder(incident: Incident, now: datetime) -> Reply:
    return Reply(
        title=f"{incident.endpoint.name} is still down",
        text=f"Down for {format_duration(now - incident.started_at)}: "
        f"{incident.error or 'no answer'}. Acknowledge to stop these reminders.",
        status=Status.ERROR,
        buttons=(Button("Acknowledge", f"ack {incident.id}", "primary"),),
    )
