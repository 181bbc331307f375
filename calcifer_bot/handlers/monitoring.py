"""endpoint, check, mute, maintenance, ack, incidents, uptime, graph, doc."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from calcifer_bot import history
from calcifer_bot.aio import blocking
from calcifer_bot.alerts import ago, target_of
from calcifer_bot.commands import Arg, Context, choice, command, duration, integer
from calcifer_bot.endpoints import (
    Definition,
    build,
    check_name,
    check_tag,
    has_tag,
    qualify_channel,
    split_tags,
)
from calcifer_bot.engine import endpoint_named, open_incident
from calcifer_bot.errors import NotFound, UsageError
from calcifer_bot.handlers.basics import Section, status_section
from calcifer_bot.models import Endpoint, EndpointGroup, Incident, MaintenanceWindow
from calcifer_bot.parser import counted, format_duration
from calcifer_bot.reply import Attachment, Button, Field, Reply, Status, Visibility
from calcifer_bot.roles import Role
from integrations.monitoring import generate_endpoint_documentation


def _window(text: str) -> timedelta:
    value = duration(text)
    if value > timedelta(days=400) or value < timedelta(minutes=5):
        raise ValueError("expected a window from 5m to 400d, e.g. 24h, 7d or 30d")
    return value


@command(
    "endpoint add",
    summary="Watch a host, port, URL, certificate, name or heartbeat",
    args=[
        Arg("name", "a short name, e.g. nas or web-01", check_name),
        Arg("type", "icmp (alias network), tcp, http, https, dns, tls or push"),
        Arg(
            "target",
            "host or IP; host:port for tcp/tls; a URL for http(s); nothing for push",
            default="",
        ),
        Arg("port", "port, if not in TARGET", integer(1, 65535), option=True, default=None),
        Arg(
            "interval", "time between checks", duration, option=True, default=timedelta(seconds=60)
        ),
        Arg(
            "timeout",
            "how long one check may take",
            duration,
            option=True,
            default=timedelta(seconds=5),
        ),
        Arg(
            "failures",
            "failed checks in a row before it is down",
            integer(1, 100),
            option=True,
            default=3,
        ),
        Arg(
            "successes",
            "good checks in a row before it is up again",
            integer(1, 100),
            option=True,
            default=2,
        ),
        Arg(
            "expect", "http(s): accepted status codes", option=True, default=None, metavar="200-399"
        ),
        Arg("keyword", "http(s): text the page must contain", option=True, default=None),
        Arg("insecure", "http(s)/tls: accept self-signed certificates", switch=True),
        Arg(
            "warn-days",
            "tls: warn when the certificate expires sooner",
            integer(1, 365),
            option=True,
            default=14,
            metavar="N",
        ),
        Arg("address", "dns: an address the answer must contain", option=True, default=None),
        Arg(
            "channel",
            "where its alerts go (default: CALCIFER_ALERT_CHANNEL or here)",
            option=True,
            default=None,
        ),
        Arg(
            "service",
            "the service it belongs to (links alerts to work items)",
            option=True,
            default=None,
        ),
        Arg("group", "a group of endpoints", option=True, default=None),
        Arg(
            "quorum",
            "alert for the group only when N members are down",
            integer(1, 1000),
            option=True,
            default=None,
            metavar="N",
        ),
        Arg(
            "depends-on",
            "the endpoint it needs (a router): its outage folds this one's in",
            check_name,
            option=True,
            default=None,
            metavar="NAME",
        ),
        Arg("remind", "remind while down, at least 5m", duration, option=True, default=None),
        Arg(
            "tags",
            "comma-separated labels that notification routes match, e.g. web,prod",
            split_tags,
            option=True,
            default=(),
            metavar="a,b",
        ),
        Arg(
            "severity",
            "critical (default), warning or info: notification routes match it",
            option=True,
            default="critical",
        ),
    ],
    role=Role.OPERATOR,
    examples=[
        "endpoint add nas icmp 192.168.1.10",
        "endpoint add web https https://example.org --keyword Welcome --service web",
        "endpoint add db tcp db.lan:5432 --depends-on router",
        "endpoint add backup-job push --interval 1d",
        "endpoint add staging https https://staging.lan --tags web,staging --severity info",
    ],
)
async def endpoint_add(
    ctx: Context,
    name: str,
    type: str,
    target: str,
    port: int | None,
    interval: timedelta,
    timeout: timedelta,  # noqa: ASYNC109  (the check's timeout, not this call's)
    failures: int,
    successes: int,
    expect: str | None,
    keyword: str | None,
    insecure: bool,
    warn_days: int,
    address: str | None,
    channel: str | None,
    service: str | None,
    group: str | None,
    quorum: int | None,
    depends_on: str | None,
    remind: timedelta | None,
    tags: tuple[str, ...],
    severity: str,
) -> Reply:
    if channel is not None:
        channel = qualify_channel(channel, ctx.command.platform)
    elif ctx.settings.alert_channel is None:
        channel = _here(ctx)
    definition = Definition(
        name=name, type=type, target=target, port=port, interval=interval, timeout=timeout,
        failures=failures, successes=successes, expect=expect, keyword=keyword,
        insecure=insecure, warn_days=warn_days, address=address, channel=channel,
        service=service, group=group, quorum=quorum, depends_on=depends_on, remind=remind,
        tags=tags, severity=severity,
    )  # fmt: skip
    now = ctx.now()

    def add(session: Session) -> Endpoint:
        ep = build(definition, session, now, source="chat")
        session.add(ep)
        session.flush()
        return ep

    ep = await ctx.db.write(add)
    await ctx.core.scheduler.refresh(ep.id)
    fields = [
        Field("Checks", f"`{target_of(ep)}` every {format_duration(interval)}"),
        Field("Thresholds", _thresholds(failures, successes)),
        Field("Alerts to", ctx.core.engine.destination(ep)),
    ]
    if ep.tags or ep.severity != "critical":
        fields += _labels(ep)
    if ep.push_token:
        url = f"{ctx.settings.http.base_url}/push/{ep.push_token}"
        fields.append(Field("Push URL", f"`{url}` (GET or POST)", inline=False))
    return Reply(
        title=f"Watching {name}",
        text=f"Added {name}; the first check runs now.",
        status=Status.OK,
        fields=tuple(fields),
    )


def _thresholds(failures: int, successes: int) -> str:
    return f"down after {counted(failures, 'failure')}, up after {counted(successes, 'success')}"


def _labels(ep: Endpoint) -> list[Field]:
    fields = [Field("Severity", ep.severity)]
    if ep.tags:
        fields.append(Field("Tags", ", ".join(ep.tags)))
    return fields


def _here(ctx: Context) -> str:
    cmd = ctx.command
    return "console" if cmd.platform == "console" else f"{cmd.platform}:{cmd.channel}"


@command(
    "endpoint list",
    summary="Every endpoint and its state",
    args=[
        Arg("down", "only those that are down", switch=True),
        Arg("tag", "only those carrying this tag", check_tag, option=True, default=None),
    ],
    visibility=Visibility.EPHEMERAL,
    examples=["endpoint list", "endpoint list --down", "endpoint list --tag prod --down"],
)
async def endpoint_list(ctx: Context, down: bool, tag: str | None) -> Reply:
    now = ctx.now()

    def rows(session: Session) -> list[Endpoint]:
        query = select(Endpoint).order_by(Endpoint.name).limit(500)
        if down:
            query = query.where(Endpoint.state == "down")
        if tag is not None:
            query = query.where(has_tag(tag, ctx.db.kind))
        return list(session.scalars(query))

    endpoints = await ctx.db.read(rows)
    tagged = f" tagged {tag}" if tag else ""
    if not endpoints:
        if down:
            text = f"Nothing{tagged} is down."
        elif tag:
            text = f"No endpoints{tagged}."
        else:
            text = "No endpoints yet: `endpoint add NAME TYPE TARGET`."
        return Reply(title="Endpoints", text=text, status=Status.OK if down else Status.INFO)
    lines = [_summary(ep, now) for ep in endpoints]
    more = " (first 500)" if len(endpoints) == 500 else ""
    return Reply(
        title=f"Endpoints{tagged} down{more}" if down else f"Endpoints{tagged}{more}",
        text="\n".join(lines),
        status=Status.ERROR if down else Status.INFO,
    )


_MARK = {"up": "🟢", "down": "🔴", "unknown": "⚪"}


def _summary(ep: Endpoint, now: datetime) -> str:
    line = f"{_MARK.get(ep.state, '⚪')} *{ep.name}* {ep.kind} `{target_of(ep)}` — {ep.state}"
    if ep.state_since:
        line += f" for {format_duration(now - ep.state_since)}"
    if ep.state == "down" and ep.last_error:
        line += f": {ep.last_error}"
    elif ep.last_latency_ms is not None and ep.state == "up":
        line += f", {ep.last_latency_ms:.0f} ms"
    if ep.muted_until and ep.muted_until > now:
        line += f" (muted for {format_duration(ep.muted_until - now)})"
    if ep.flapping:
        line += " (flapping)"
    return line


@command(
    "endpoint show",
    summary="One endpoint in full: what is checked, its state and settings",
    args=[Arg("name", "the endpoint")],
    visibility=Visibility.EPHEMERAL,
    examples=["endpoint show nas"],
)
async def endpoint_show(ctx: Context, name: str) -> Reply:
    now = ctx.now()

    def load(session: Session) -> tuple[Endpoint, str | None, Incident | None, int | None]:
        ep = endpoint_named(session, name)
        parent = session.get(Endpoint, ep.parent_id).name if ep.parent_id else None  # type: ignore[union-attr]
        incident = open_incident(session, ep.id)
        group = session.get(EndpointGroup, ep.group_name) if ep.group_name else None
        return ep, parent, incident, group.quorum if group else None

    ep, parent, incident, quorum = await ctx.db.read(load)
    fields = [
        Field("State", ep.state + (f" for {format_duration(now - ep.state_since)}"
                                   if ep.state_since else "")),
        Field("Target", f"`{target_of(ep)}`"),
        Field("Interval", format_duration(timedelta(seconds=ep.interval_s))),
        Field("Timeout", format_duration(timedelta(seconds=ep.timeout_s))),
        Field("Thresholds", _thresholds(ep.failures, ep.successes)),
        Field("Alerts to", ctx.core.engine.destination(ep)),
    ]  # fmt: skip
    if ep.last_checked_at:
        fields.append(Field("Last check", ago(ep.last_checked_at, now)))
    if ep.last_latency_ms is not None:
        fields.append(Field("Latency", f"{ep.last_latency_ms:.1f} ms"))
    if ep.last_error:
        fields.append(Field("Error" if ep.state != "up" else "Warning", ep.last_error, False))
    for label, value in (("Service", ep.service), ("Depends on", parent)):
        if value:
            fields.append(Field(label, value))
    if ep.group_name:
        fields.append(Field("Group", ep.group_name + (f" (quorum {quorum})" if quorum else "")))
    fields += _labels(ep)
    if ep.muted_until and ep.muted_until > now:
        why = f": {ep.mute_reason}" if ep.mute_reason else ""
        fields.append(Field("Muted", f"until {ep.muted_until:%Y-%m-%d %H:%M} UTC by "
                                     f"{ep.muted_by}{why}", False))  # fmt: skip
    if incident:
        fields.append(
            Field("Open incident", f"#{incident.id} since {ago(incident.started_at, now)}")
        )
    if ep.push_token:
        fields.append(Field("Push URL", f"`{ctx.settings.http.base_url}/push/{ep.push_token}`"))
    return Reply(
        title=ep.name,
        text=f"{ep.kind} check, added from {ep.source}.",
        status=_state_status(ep.state),
        fields=tuple(fields),
        buttons=(Button("Check now", f"check {ep.name}"), Button("Uptime", f"uptime {ep.name}")),
    )


def _state_status(state: str) -> Status:
    return {"up": Status.OK, "down": Status.ERROR}.get(state, Status.INFO)


@command(
    "endpoint remove",
    summary="Stop watching an endpoint and delete its history",
    args=[Arg("name", "the endpoint")],
    role=Role.ADMIN,
    confirm=True,
    examples=["endpoint remove old-nas"],
)
async def endpoint_remove(ctx: Context, name: str) -> Reply:
    def remove(session: Session) -> tuple[int, list[str]]:
        ep = endpoint_named(session, name)
        children = [
            c.name for c in session.scalars(select(Endpoint).where(Endpoint.parent_id == ep.id))
        ]
        session.delete(ep)
        return ep.id, children

    endpoint_id, children = await ctx.db.write(remove)
    await ctx.core.scheduler.refresh(endpoint_id)
    note = f" {', '.join(children)} no longer depend on anything." if children else ""
    return Reply(text=f"Removed {name} and its history.{note}", status=Status.OK)


@command(
    "check",
    summary="Check an endpoint now and show the result",
    args=[Arg("name", "the endpoint")],
    role=Role.OPERATOR,
    slow=True,
    examples=["check nas"],
)
async def check(ctx: Context, name: str) -> Reply:
    endpoint_id = await ctx.db.read(lambda s: endpoint_named(s, name).id)
    await ctx.progress(f"Checking {name}…")
    result, ep = await ctx.core.scheduler.check_now(endpoint_id)
    latency = f" in {result.latency_ms:.1f} ms" if result.latency_ms is not None else ""
    if result.ok:
        text = f"{name} answered{latency}."
        if result.warning:
            text += f" Warning: {result.warning}."
    else:
        text = f"{name} failed{latency}: {result.error}."
    pending = ""
    if ep.state == "up" and ep.fail_streak:
        pending = f" {ep.fail_streak} of {ep.failures} failures before it counts as down."
    elif ep.state == "down" and ep.ok_streak:
        pending = f" {ep.ok_streak} of {ep.successes} successes before it counts as up."
    return Reply(
        title=f"{name}: {'up' if result.ok else 'down'}",
        text=text + f" It is {ep.state}." + pending,
        status=Status.WARNING if result.ok and result.warning else
        (Status.OK if result.ok else Status.ERROR),
        fields=(Field("Target", f"`{target_of(ep)}`"),),
    )  # fmt: skip


@command(
    "mute",
    summary="Silence an endpoint's alerts for a while (checks and history go on)",
    args=[
        Arg("name", "the endpoint"),
        Arg("duration", "how long, e.g. 30m, 2h, 1d", duration),
        Arg("reason", "why, for the others", rest=True, default=None),
    ],
    role=Role.OPERATOR,
    examples=["mute nas 2h disk swap", "mute web 30m"],
)
async def mute(ctx: Context, name: str, duration: timedelta, reason: str | None) -> Reply:
    if duration > timedelta(days=365) or duration <= timedelta(0):
        raise UsageError("DURATION must be above zero and at most 365d")
    until = ctx.now() + duration
    await ctx.core.engine.mute(name, until, reason, ctx.command.user_name or ctx.identity)
    why = f" ({reason})" if reason else ""
    return Reply(
        text=f"Muted {name} for {format_duration(duration)}, until {until:%Y-%m-%d %H:%M} UTC"
        f"{why}. Checks and history go on; `unmute {name}` ends it early.",
        status=Status.OK,
    )


@command(
    "unmute",
    summary="End a mute early",
    args=[Arg("name", "the endpoint")],
    role=Role.OPERATOR,
)
async def unmute(ctx: Context, name: str) -> Reply:
    await ctx.core.engine.unmute(name, ctx.identity)
    return Reply(text=f"Alerts for {name} are back on.", status=Status.OK)


@command(
    "maintenance",
    summary="Plan a maintenance window: alerts are held while it lasts",
    args=[
        Arg("name", "the endpoint"),
        Arg("start", "now, HH:MM (UTC, next occurrence) or an ISO date-time"),
        Arg("duration", "how long, e.g. 30m or 2h", duration),
        Arg("every", "repeat daily or weekly", choice("day", "week"), option=True, default=None),
        Arg("reason", "why", option=True, default=None),
    ],
    role=Role.OPERATOR,
    examples=["maintenance nas now 1h", "maintenance backup 03:00 30m --every day"],
)
async def maintenance(
    ctx: Context, name: str, start: str, duration: timedelta, every: str | None,
    reason: str | None,
) -> Reply:  # fmt: skip
    now = ctx.now()
    begins = parse_start(start, now)
    if duration <= timedelta(0) or duration > timedelta(days=7):
        raise UsageError("DURATION must be above zero and at most 7d")
    if every == "day" and duration >= timedelta(days=1):
        raise UsageError("a daily window must be shorter than a day")

    def add(session: Session) -> None:
        ep = endpoint_named(session, name)
        session.add(
            MaintenanceWindow(
                endpoint_id=ep.id, starts_at=begins, duration_s=duration.total_seconds(),
                every=every, reason=reason, created_by=ctx.identity, created_at=now,
            )
        )  # fmt: skip

    await ctx.db.write(add)
    repeat = f", every {every}" if every else ""
    return Reply(
        text=f"Maintenance for {name} from {begins:%Y-%m-%d %H:%M} UTC for "
        f"{format_duration(duration)}{repeat}. Alerts are held meanwhile; history is kept.",
        status=Status.OK,
    )


def parse_start(text: str, now: datetime) -> datetime:
    """``now``, ``HH:MM`` (the next time it is that time, UTC) or an ISO date-time."""
    if text.lower() == "now":
        return now
    try:
        if len(text) <= 5 and ":" in text:
            at = time.fromisoformat(text.zfill(5))
            when = datetime.combine(now.date(), at, tzinfo=UTC)
            return when if when >= now - timedelta(minutes=1) else when + timedelta(days=1)
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"START {text!r}: expected now, HH:MM or a date-time like 2026-12-24T22:00"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _incident_id(text: str) -> str:
    return text.lstrip("#")


@command(
    "ack",
    summary="Acknowledge an incident: you are on it, reminders stop",
    args=[
        Arg(
            "incident", "the incident number (from the alert), or the endpoint's name", _incident_id
        ),
        Arg("reason", "a note for the others", rest=True, default=None),
    ],
    role=Role.OPERATOR,
    examples=["ack 17 looking at it", "ack nas"],
)
async def ack(ctx: Context, incident: str, reason: str | None) -> Reply:
    if incident.isdigit():
        incident_id = int(incident)
    else:

        def open_of(session: Session) -> int:
            found = open_incident(session, endpoint_named(session, incident).id)
            if found is None:
                raise NotFound(f"{incident} has no open incident")
            return found.id

        incident_id = await ctx.db.read(open_of)
    who = ctx.command.user_name or ctx.identity
    row = await ctx.core.engine.ack(incident_id, who, reason)
    return Reply(
        text=f"Incident #{row.id} acknowledged by {who}. Reminders stop.", status=Status.OK
    )


@command(
    "incidents",
    summary="Recent incidents, newest first",
    args=[
        Arg("open", "only unresolved ones", switch=True),
        Arg("count", "how many (1-50)", integer(1, 50), option=True, default=15, metavar="N"),
    ],
    visibility=Visibility.EPHEMERAL,
    examples=["incidents", "incidents --open"],
)
async def incidents(ctx: Context, open: bool, count: int) -> Reply:
    now = ctx.now()

    def rows(session: Session) -> list[tuple[Incident, str]]:
        query = (
            select(Incident, Endpoint.name)
            .join(Endpoint, Incident.endpoint_id == Endpoint.id)
            .order_by(Incident.id.desc())
            .limit(count)
        )
        if open:
            query = query.where(Incident.resolved_at.is_(None))
        return [(i, n) for i, n in session.execute(query)]

    found = await ctx.db.read(rows)
    if not found:
        return Reply(title="Incidents", text="No open incidents." if open else "No incidents yet.",
                     status=Status.OK)  # fmt: skip
    lines = []
    for i, name in found:
        if i.resolved_at:
            state = f"resolved after {format_duration(i.resolved_at - i.started_at)}"
        else:
            state = f"open for {format_duration(now - i.started_at)}"
        extra = f", acked by {i.acked_by}" if i.acked_by else ""
        extra += f" ({i.suppressed})" if i.suppressed else ""
        lines.append(f"#{i.id} {name}: {i.error or 'down'} — {i.started_at:%m-%d %H:%M}, "
                     f"{state}{extra}")  # fmt: skip
    return Reply(title="Incidents", text="\n".join(lines))


@command(
    "uptime",
    summary="Uptime, latency and incidents over a window",
    args=[
        Arg("name", "the endpoint"),
        Arg("window", "24h, 7d, 30d…", _window, default=timedelta(days=1)),
    ],
    examples=["uptime nas", "uptime web 30d"],
)
async def uptime(ctx: Context, name: str, window: timedelta) -> Reply:
    now = ctx.now()

    def stats(session: Session) -> history.Uptime:
        ep = endpoint_named(session, name)
        return history.uptime(session, ep.id, window, now)

    u = await ctx.db.read(stats)
    label = format_duration(window)
    pct = "no data" if u.uptime_pct is None else f"{u.uptime_pct:.2f} %"
    fields = [
        Field("Uptime", pct),
        Field("Downtime", format_duration(u.downtime) if u.downtime else "none"),
        Field("Checks", f"{u.checks} ({u.failures} failed)"),
        Field("Latency p50 / p95", _ms(u.p50_ms) + " / " + _ms(u.p95_ms)),
        Field("Incidents", str(u.incidents) + (" (one open)" if u.open_incident else "")),
    ]
    good = u.uptime_pct is None or u.uptime_pct >= 99.9
    return Reply(
        title=f"{name}: uptime over {label}",
        text=f"{name} was up {pct} of the last {label}.",
        status=Status.OK if good else Status.WARNING,
        fields=tuple(fields),
    )


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


@command(
    "graph",
    summary="A latency chart with the down periods shaded",
    args=[
        Arg("name", "the endpoint"),
        Arg("window", "24h, 7d, 30d…", _window, default=timedelta(days=1)),
    ],
    slow=True,
    examples=["graph web", "graph nas 7d"],
)
async def graph(ctx: Context, name: str, window: timedelta) -> Reply:
    now = ctx.now()
    await ctx.progress(f"Drawing {name}…")

    def load(session: Session) -> history.Series:
        ep = endpoint_named(session, name)
        return history.series(session, ep.id, window, now)

    series = await ctx.db.read(load)
    png = await blocking(history.render_graph, name, series, window)
    return Reply(
        title=f"{name}: latency over {format_duration(window)}",
        text=f"{len(series.points)} points, {len(series.down)} down periods.",
        attachments=(Attachment(f"{name}-{format_duration(window).replace(' ', '')}.png", png,
                                "image/png"),),
    )  # fmt: skip


@command(
    "doc",
    summary="Generated Markdown documentation for an endpoint (--commit: onto a work item)",
    args=[
        Arg("name", "the endpoint"),
        Arg(
            "commit",
            "commit it as docs/endpoint-NAME.md on a work item's branch (operator)",
            switch=True,
        ),
        Arg(
            "item",
            "the work item (default: your newest open one)",
            integer(1),
            option=True,
            default=None,
            metavar="ID",
        ),
    ],
    visibility=Visibility.EPHEMERAL,
    examples=["doc nas", "doc nas --commit", "doc nas --commit --item 3"],
)
async def doc(ctx: Context, name: str, commit: bool, item: int | None) -> Reply:
    ep = await ctx.db.read(lambda s: endpoint_named(s, name))
    text = generate_endpoint_documentation(ep)
    if commit:
        from calcifer_bot.handlers.work import commit_doc  # work items sit above monitoring

        return replace(await commit_doc(ctx, name, text, item), visibility=Visibility.CHANNEL)
    return Reply(
        title=f"{name}: documentation",
        text=text,
        attachments=(Attachment(f"endpoint-{name}.md", text.encode(), "text/markdown"),),
    )


@status_section
async def _endpoints(ctx: Context) -> Section:
    now = ctx.now()

    def read(session: Session) -> tuple[dict[str, int], int, int, int, list[str]]:
        states = dict(
            session.execute(select(Endpoint.state, func.count()).group_by(Endpoint.state)).all()
        )

        def count(model: Any, *where: Any) -> int:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

        down = session.scalars(
            select(Endpoint.name).where(Endpoint.state == "down").order_by(Endpoint.name).limit(10)
        )
        return (
            states,
            count(Endpoint, Endpoint.muted_until > now),
            count(Endpoint, Endpoint.flapping.is_(True)),
            count(Incident, Incident.resolved_at.is_(None)),
            list(down),
        )

    states, muted, flapping, incidents, names = await ctx.db.read(read)
    down = states.get("down", 0)
    section = Section(
        [
            Field("Endpoints", str(sum(states.values()))),
            Field("Up", str(states.get("up", 0))),
            Field("Down", str(down)),
            Field("Muted", str(muted)),
            Field("Open incidents", str(incidents)),
        ]
    )
    if down:
        section.problems.append((Status.ERROR, f"{counted(down, 'endpoint')} down."))
        more = f" and {down - len(names)} more" if down > len(names) else ""
        section.fields.append(Field("Down now", ", ".join(names) + more, inline=False))
    if flapping:
        section.fields.append(Field("Flapping", str(flapping)))
        section.problems.append((Status.WARNING, f"{flapping} flapping."))
    return section
