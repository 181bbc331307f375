"""notify test / routes / retry: the notification destinations from chat."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import cast

from sqlalchemy.orm import Session

import integrations
from calcifer_bot.commands import Arg, Context, command
from calcifer_bot.engine import endpoint_named
from calcifer_bot.errors import CalciferError, NotFound
from calcifer_bot.outbox import Backlog, backlog, enqueue, last_error, unique_key
from calcifer_bot.parser import counted
from calcifer_bot.reply import Field, Reply, Status
from calcifer_bot.roles import Role
from calcifer_bot.routing import NOTIFY, Labels, endpoint_labels
from integrations.notifications import NotificationsIntegration


def notifier() -> NotificationsIntegration:
    return cast(NotificationsIntegration, integrations.get("notifications"))


def _names(ctx: Context, name: str | None) -> list[str]:
    known = list(ctx.core.routes.addresses)
    if name is None:
        if not known:
            raise NotFound(
                "no notification destinations are configured; "
                "see [notifications.destinations.NAME] in the README"
            )
        return known
    if name not in known:
        raise NotFound(
            f"there is no destination named {name!r}; "
            f"configured: {', '.join(known) or 'none'} (`notify routes` lists them)"
        )
    return [name]


@command(
    "notify test",
    summary="Send a test message to one destination, or to all of them",
    args=[Arg("destination", "a destination's name (default: every one)", default=None)],
    role=Role.OPERATOR,
    slow=True,
    examples=["notify test", "notify test ops-mail"],
)
async def notify_test(ctx: Context, destination: str | None) -> Reply:
    names = _names(ctx, destination)
    reply = Reply(
        title="Test notification from Calcifer",
        text=f"{ctx.command.user_name or ctx.identity} sent this with `notify test`. "
        "If you can read it, this destination works.",
    )
    fields: list[Field] = []
    failed = 0
    for name in names:
        address = ctx.core.routes.addresses[name]
        if not address.startswith(f"{NOTIFY}:"):
            # A chat channel: through the outbox and the chat adapter, like any alert.
            await ctx.db.write(partial(_queue_test, address=address, reply=reply, now=ctx.now()))
            ctx.core.wake_deliverers()
            fields.append(Field(name, f"queued for `{address}`"))
            continue
        await ctx.progress(f"Sending to {name}…")
        try:
            ms = await notifier().send_test(name, reply, unique_key("test"))
        except CalciferError as exc:
            failed += 1
            fields.append(Field(name, f"✗ {exc.message}", inline=False))
        else:
            fields.append(Field(name, f"✓ delivered in {ms:.0f} ms"))
    return Reply(
        title="Notification test",
        text=f"{counted(len(names) - failed, 'destination')} took the test message."
        if not failed
        else f"{failed} of {len(names)} could not be reached.",
        status=Status.OK if not failed else Status.ERROR,
        fields=tuple(fields),
    )


def _queue_test(session: Session, *, address: str, reply: Reply, now: datetime) -> None:
    enqueue(session, key=unique_key("test"), destination=address, kind="test", reply=reply, now=now)


@command(
    "notify routes",
    summary="What goes where: the destinations, the rules, and an endpoint's path",
    args=[Arg("endpoint", "show where this endpoint's alerts go", default=None)],
    examples=["notify routes", "notify routes nas"],
)
async def notify_routes(ctx: Context, endpoint: str | None) -> Reply:
    routes = ctx.core.routes
    if endpoint is not None:
        return await _endpoint_route(ctx, endpoint)
    if not routes.addresses:
        return Reply(
            title="Notification routes",
            text="No notification destinations are configured: alerts go to their chat "
            "channel only. See [notifications] in the README.",
        )
    queue = await ctx.db.read(backlog)
    fields = [
        Field(name, _destination_line(ctx, name, queue.get(address)), inline=False)
        for name, address in routes.addresses.items()
    ]
    rules = [f"{n}. {r} → {', '.join(r.to)}" for n, r in enumerate(routes.routes, 1)]
    if routes.default:
        rules.append(f"otherwise → {', '.join(routes.default)}")
    fields.append(Field("Rules", "\n".join(rules) or "none: only the chat channels", False))
    return Reply(
        title="Notification routes",
        text="Every matching rule adds its destinations; `default` applies when none "
        "matches. Alerts also go to their chat channel.",
        fields=tuple(fields),
    )


def _destination_line(ctx: Context, name: str, queue: Backlog | None) -> str:
    address = ctx.core.routes.addresses[name]
    if address.startswith(f"{NOTIFY}:"):
        dest = notifier().get(name)
        line = dest.describe()
        line += f" · at most {dest.rate}" if dest.rate else " · no rate limit"
    else:
        line = f"chat channel `{address}`"
    if queue is not None:
        line += f" · {queue.pending} queued"
        if queue.dead:
            line += f" · {queue.dead} undeliverable{last_error(queue)}"
    return line


async def _endpoint_route(ctx: Context, name: str) -> Reply:
    def read(session: Session) -> tuple[Labels, str | None]:
        ep = endpoint_named(session, name)
        return endpoint_labels(ep, "alert"), ctx.core.engine.channel(ep)

    labels, channel = await ctx.db.read(read)
    routes = ctx.core.routes
    lines = [f"chat channel `{channel}`"] if channel else []
    for n, route in enumerate(routes.routes, 1):
        if route.matches(labels):
            lines += [f"{dest} (rule {n}: {route})" for dest in route.to]
    if not any(r.matches(labels) for r in routes.routes):
        lines += [f"{dest} (default)" for dest in routes.default]
    if not lines:
        lines = ["the console (no channel, no route)"]
    described = [
        f"service {labels.service}" if labels.service else None,
        f"group {labels.group}" if labels.group else None,
        f"tags {', '.join(labels.tags)}" if labels.tags else None,
        f"severity {labels.severity}",
    ]
    return Reply(
        title=f"Where alerts for {name} go",
        text=f"{name} ({', '.join(d for d in described if d)}): its outages, recoveries "
        "and reminders go to",
        fields=(Field("Destinations", "\n".join(f"• {line}" for line in lines), False),),
    )


@command(
    "notify retry",
    summary="Try undeliverable messages again (after fixing a destination)",
    args=[Arg("destination", "a destination's name (default: every one)", default=None)],
    role=Role.OPERATOR,
    examples=["notify retry ops-mail"],
)
async def notify_retry(ctx: Context, destination: str | None) -> Reply:
    # Without a name: every dead message, chat channels' included (`status` lists them).
    addresses = [ctx.core.routes.addresses[_names(ctx, destination)[0]]] if destination else [""]
    count = await ctx.core.outbox.retry_dead(addresses)
    ctx.core.wake_deliverers()
    where = destination or "every destination"
    if not count:
        return Reply(text=f"Nothing undeliverable for {where}.", status=Status.OK)
    return Reply(
        text=f"{counted(count, 'message')} for {where} will be tried again now.",
        status=Status.OK,
    )
