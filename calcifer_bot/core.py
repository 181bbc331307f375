"""The dispatcher: text in, Reply out. The one place that catches broadly."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

import calcifer_bot.handlers  # noqa: F401  (importing registers the built-in commands)
from calcifer_bot.commands import Context, Progress, Registry, Spec, UnknownCommand
from calcifer_bot.commands import registry as default_registry
from calcifer_bot.config import Settings
from calcifer_bot.db import Database
from calcifer_bot.engine import Engine
from calcifer_bot.errors import CalciferError, PermissionDenied, UsageError
from calcifer_bot.logs import redact
from calcifer_bot.models import AuditEntry, RoleGrant
from calcifer_bot.outbox import Outbox
from calcifer_bot.parser import quote, tokenize
from calcifer_bot.reply import Button, Command, Field, Reply, Status, Visibility
from calcifer_bot.roles import Resolved, Role, resolve
from calcifer_bot.routing import Routes
from calcifer_bot.scheduler import Scheduler

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"  # the handler answered with an error (not found, refused…)
    USAGE = "usage"  # unknown command or bad arguments
    DENIED = "denied"
    CONFIRM = "confirm"  # asked for confirmation, nothing done yet
    FAILED = "failed"  # the handler raised: a bug or an unexpected failure


async def _no_progress(_text: str) -> None:
    return None


class Core:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        registry: Registry | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry or default_registry
        self.clock = clock
        self.started_at = clock()
        self._secrets = sorted(settings.secret_values(), key=len, reverse=True)
        self._wakes: list[asyncio.Event] = []
        self.outbox = Outbox(db, clock)
        self.routes = Routes.from_settings(settings.notifications)
        self.engine = Engine(
            settings, db, clock, on_enqueue=self.wake_deliverers, routes=self.routes
        )
        self.scheduler = Scheduler(self.engine, clock)

    def outbox_wake(self) -> asyncio.Event:
        """An event set whenever something is enqueued, so a deliverer need not poll hard.

        One per deliverer: with a shared one, the first to wake would clear it
        before the others had seen it.
        """
        event = asyncio.Event()
        self._wakes.append(event)
        return event

    def wake_deliverers(self) -> None:
        for event in self._wakes:
            event.set()

    def lookup(self, text: str) -> Spec | None:
        return self.registry.lookup(text)

    async def role_of(self, command: Command) -> Resolved:
        names = [command.identity, *command.groups]

        def grants(session: Session) -> dict[str, Role]:
            rows = session.scalars(select(RoleGrant).where(RoleGrant.identity.in_(names)))
            return {row.identity: Role.parse(row.role) for row in rows}

        return resolve(
            command.identity,
            command.groups,
            admins=self.settings.admins,
            operators=self.settings.operators,
            grants=await self.db.read(grants),
            default=self.settings.default_role,
        )

    async def dispatch(self, command: Command, progress: Progress | None = None) -> Reply:
        started = time.perf_counter()
        spec: Spec | None = None
        error_id: str | None = None
        try:
            resolved = await self.role_of(command)
            words = tokenize(command.text)
            if not words:
                words = ["help"]
            spec, rest = self.registry.resolve(words, resolved.role)
            if spec.role > resolved.role:
                raise PermissionDenied(
                    f"`{spec.name}` needs the {spec.role} role; you are {resolved.role} "
                    f"({command.identity})."
                )
            values = spec.bind(rest)
            if spec.confirm and not values.pop("yes"):
                reply, outcome = _confirmation(spec, command.text), Outcome.CONFIRM
            else:
                ctx = Context(
                    command, resolved.role, resolved.source, self, progress or _no_progress
                )
                reply = await spec.handler(ctx, **values)
                outcome = Outcome.OK if reply.ok else Outcome.ERROR
        except UnknownCommand as exc:
            reply, outcome = _usage_error(exc.message, exc.suggestion), Outcome.USAGE
        except UsageError as exc:
            reply, outcome = _usage_error(exc.message, spec), Outcome.USAGE
        except PermissionDenied as exc:
            reply, outcome = Reply.error(exc.message, title="Not allowed"), Outcome.DENIED
        except CalciferError as exc:
            reply, outcome = Reply.error(exc.message), Outcome.ERROR
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("command %r failed (error id %s)", command.text, error_id)
            name = f"`{spec.name}`" if spec else "that command"
            reply = Reply.error(
                f"Something went wrong running {name} (error id {error_id}). "
                "The details are in Calcifer's log."
            )
            outcome = Outcome.FAILED
        if reply.visibility is None:
            reply = replace(reply, visibility=spec.visibility if spec else Visibility.EPHEMERAL)
        reply = self._redact(reply)
        await self._audit(command, spec, outcome, time.perf_counter() - started, error_id)
        return reply

    def _redact(self, reply: Reply) -> Reply:
        if not self._secrets:
            return reply

        def clean(text: str) -> str:
            return redact(text, self._secrets)

        return replace(
            reply,
            text=clean(reply.text),
            title=reply.title and clean(reply.title),
            footer=reply.footer and clean(reply.footer),
            fields=tuple(
                replace(f, name=clean(f.name), value=clean(f.value)) for f in reply.fields
            ),
        )

    async def _audit(
        self,
        command: Command,
        spec: Spec | None,
        outcome: Outcome,
        seconds: float,
        error_id: str | None,
    ) -> None:
        entry = AuditEntry(
            at=self.clock(),
            identity=command.identity,
            platform=command.platform,
            channel=command.channel,
            command=spec.name if spec else None,
            text=redact(command.text, self._secrets),
            outcome=outcome,
            duration_ms=round(seconds * 1000, 3),
            error_id=error_id,
        )
        try:
            await self.db.write(lambda session: session.add(entry))
        except Exception:
            # Losing an audit row must not cost the user the answer they asked for.
            log.exception("could not write the audit row for %r", command.text)


def _usage_error(message: str, spec: Spec | None) -> Reply:
    text = message[:1].upper() + message[1:]
    if spec is not None:
        text += f"\nUsage: `{spec.usage}`"
    return Reply.error(text)


def _confirmation(spec: Spec, text: str) -> Reply:
    again = " ".join([*map(quote, tokenize(text)), "--yes"])
    return Reply(
        title=f"Confirm {spec.name}",
        text=f"`{text.strip()}` is hard to undo. Press Confirm, or run it again with `--yes`.",
        status=Status.WARNING,
        fields=(Field("Runs", f"`{again}`", inline=False),),
        buttons=(Button("Confirm", again, "danger"), Button("Cancel", None)),
        visibility=Visibility.EPHEMERAL,
    )
