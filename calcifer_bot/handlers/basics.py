"""help, status, whoami, integrations, roles and audit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from sqlalchemy import select
from sqlalchemy.orm import Session

import integrations
from calcifer_bot import __version__
from calcifer_bot.commands import Arg, Context, Spec, command, integer
from calcifer_bot.errors import UsageError
from calcifer_bot.models import AuditEntry, RoleGrant
from calcifer_bot.outbox import backlog, last_error
from calcifer_bot.parser import counted, format_duration
from calcifer_bot.reply import Field, Reply, Status, Visibility
from calcifer_bot.roles import Role, check_identity


@dataclass(frozen=True, slots=True)
class Section:
    """One part's contribution to `status`: its lines, and what is wrong, if anything."""

    fields: list[Field]
    problems: list[tuple[Status, str]] = dataclass_field(default_factory=list)


StatusSection = Callable[[Context], Awaitable[Section]]

# Each part of Calcifer adds its lines to `status` here (monitoring, git, …).
STATUS_SECTIONS: list[StatusSection] = []


def status_section(fn: StatusSection) -> StatusSection:
    STATUS_SECTIONS.append(fn)
    return fn


@command(
    "help",
    summary="List the commands you can run, or show how to use one",
    args=[Arg("command", "a command or group, e.g. `help role grant`", rest=True, default="")],
    aliases=["?"],
    visibility=Visibility.EPHEMERAL,
    examples=["help", "help status", "help role"],
)
async def help_(ctx: Context, command: str) -> Reply:
    visible = ctx.core.registry.visible(ctx.role)
    words = command.split()
    if not words:
        return Reply(
            title="Calcifer commands",
            text="\n".join(f"`{s.usage}` — {s.summary}" for s in visible),
            footer=f"You are {ctx.role}. `help COMMAND` shows one command in full.",
        )
    found = ctx.core.registry.find(words)
    if found and not found[1]:
        return _command_help(found[0], ctx.role)
    group = [s for s in visible if s.group == words[0].lower()]
    if group and len(words) == 1:
        return Reply(
            title=f"{words[0].lower()} commands",
            text="\n".join(f"`{s.usage}` — {s.summary}" for s in group),
        )
    raise ctx.core.registry.unknown(words, ctx.role)


def _command_help(spec: Spec, role: Role) -> Reply:
    if spec.role > role:
        return Reply.error(f"`{spec.name}` needs the {spec.role} role; you are {role}.")
    lines = [spec.summary + ".", f"Usage: `{spec.usage}`"]
    lines += [f"`{arg.label}` — {arg.help}" for arg in spec.args if arg.help]
    fields = [Field("Role", str(spec.role))]
    if spec.aliases:
        fields.append(Field("Aliases", ", ".join(f"`{a}`" for a in spec.aliases)))
    if spec.confirm:
        fields.append(Field("Confirmation", "asks first; `--yes` skips"))
    if spec.examples:
        fields.append(Field("Examples", "\n".join(f"`{e}`" for e in spec.examples), False))
    return Reply(title=spec.name, text="\n".join(lines), fields=tuple(fields))


@command(
    "status",
    summary="Endpoints up and down, open incidents, queued messages",
    examples=["status"],
)
async def status(ctx: Context) -> Reply:
    sections = [await section(ctx) for section in STATUS_SECTIONS]
    problems = [problem for section in sections for problem in section.problems]
    worst = max((level for level, _ in problems), key=list(Status).index, default=Status.OK)
    return Reply(
        title="Calcifer status",
        text=" ".join(text for _, text in problems) or "All clear.",
        status=worst,
        fields=tuple(f for section in sections for f in section.fields),
        footer=f"Calcifer {__version__}, up {format_duration(ctx.now() - ctx.core.started_at)}",
    )


@status_section
async def _outbox(ctx: Context) -> Section:
    queue = await ctx.db.read(backlog)
    pending = sum(b.pending for b in queue.values())
    section = Section([Field("Queued messages", str(pending))])
    dead = [b for b in queue.values() if b.dead]
    if dead:
        lines = [f"`{b.destination}`: {b.dead}{last_error(b)}" for b in dead[:10]]
        section.fields.append(Field("Undeliverable messages", "\n".join(lines), inline=False))
        total = sum(b.dead for b in dead)
        section.problems.append(
            (
                Status.WARNING,
                f"{counted(total, 'message')} could not be delivered; "
                "`notify retry` tries them again.",
            )
        )
    return section


@command(
    "whoami",
    summary="Your identity and role",
    visibility=Visibility.EPHEMERAL,
)
async def whoami(ctx: Context) -> Reply:
    fields = [Field("Identity", ctx.identity), Field("Role", str(ctx.role))]
    if ctx.command.user_name:
        fields.insert(0, Field("Name", ctx.command.user_name))
    return Reply(
        title="Who you are",
        text=f"You are `{ctx.identity}`, {ctx.role} ({ctx.role_source}).",
        fields=tuple(fields),
    )


@command(
    "integrations",
    summary="Each integration and whether Calcifer can reach it",
    slow=True,
    examples=["integrations"],
)
async def integrations_(ctx: Context) -> Reply:
    results = await integrations.check_all()
    if not results:
        return Reply(title="Integrations", text="No integrations are installed.")
    fields = [
        Field(integrations.integration_class(name).title, str(result))
        for name, result in results.items()
    ]
    ok = not any(r.failing for r in results.values())
    return Reply(
        title="Integrations",
        text="Every integration set up is reachable." if ok else "Some need attention.",
        status=Status.OK if ok else Status.WARNING,
        fields=tuple(fields),
    )


@command(
    "roles",
    summary="Who has which role, from configuration and from chat",
    visibility=Visibility.EPHEMERAL,
)
async def roles(ctx: Context) -> Reply:
    grants = await ctx.db.read(
        lambda s: [(g.identity, g.role, g.granted_by) for g in s.scalars(select(RoleGrant))]
    )
    listed = lambda ids: ", ".join(sorted(ids)) or "none"  # noqa: E731
    fields = [
        Field("Admins (CALCIFER_ADMINS)", listed(ctx.settings.admins), False),
        Field("Operators (CALCIFER_OPERATORS)", listed(ctx.settings.operators), False),
        Field(
            "Granted in chat",
            "\n".join(f"{i}: {r} (by {b})" for i, r, b in sorted(grants)) or "none",
            False,
        ),
    ]
    return Reply(
        title="Roles",
        text=f"Everyone else is {ctx.settings.default_role}.",
        fields=tuple(fields),
    )


@command(
    "role grant",
    summary="Give someone a role (on top of the configured ones)",
    args=[
        Arg("identity", "a platform-qualified id: slack:U123, discord:456", check_identity),
        Arg("role", "viewer, operator or admin", Role.parse),
    ],
    role=Role.ADMIN,
    confirm=True,
    examples=["role grant slack:U0123ABC operator"],
)
async def role_grant(ctx: Context, identity: str, role: Role) -> Reply:
    now = ctx.now()

    def grant(session: Session) -> None:
        session.merge(
            RoleGrant(identity=identity, role=str(role), granted_by=ctx.identity, granted_at=now)
        )

    await ctx.db.write(grant)
    return Reply(text=f"`{identity}` is now {role} (granted by {ctx.identity}).", status=Status.OK)


@command(
    "role revoke",
    summary="Take back a role given in chat",
    args=[Arg("identity", "a platform-qualified id", check_identity)],
    role=Role.ADMIN,
    examples=["role revoke slack:U0123ABC"],
)
async def role_revoke(ctx: Context, identity: str) -> Reply:
    def revoke(session: Session) -> bool:
        grant = session.get(RoleGrant, identity)
        if grant is None:
            return False
        session.delete(grant)
        return True

    if not await ctx.db.write(revoke):
        raise UsageError(f"`{identity}` has no role granted in chat (see `roles`)")
    configured = identity in ctx.settings.admins | ctx.settings.operators
    note = " Their role from configuration still applies." if configured else ""
    return Reply(text=f"Took back the chat-granted role of `{identity}`.{note}", status=Status.OK)


@command(
    "audit",
    summary="The most recent commands: who ran what, where, and how it went",
    args=[
        Arg("count", "how many (1-100)", integer(1, 100), default=10),
        Arg("user", "only this identity", check_identity, option=True, default=None, metavar="ID"),
    ],
    role=Role.ADMIN,
    visibility=Visibility.EPHEMERAL,
    examples=["audit", "audit 50 --user slack:U0123ABC"],
)
async def audit(ctx: Context, count: int, user: str | None) -> Reply:
    def recent(session: Session) -> list[AuditEntry]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(count)
        if user:
            query = query.where(AuditEntry.identity == user)
        return list(session.scalars(query))

    rows = await ctx.db.read(recent)
    lines = [
        f"{row.at:%Y-%m-%d %H:%M:%S} `{row.identity}` in {row.platform}:{row.channel}: "
        f"`{row.text.strip()}` → {row.outcome}"
        + (f" (error id {row.error_id})" if row.error_id else "")
        for row in reversed(rows)
    ]
    return Reply(title="Audit log", text="\n".join(lines) or "Nothing recorded yet.")
