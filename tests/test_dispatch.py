"""The dispatcher through the test bot, on real databases: roles, confirmation,
audit, errors that never leak a traceback, secrets that never leak at all."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from calcifer_bot.commands import Arg, Context, Registry
from calcifer_bot.core import Core
from calcifer_bot.models import AuditEntry, Endpoint, Incident, OutboxMessage, RoleGrant
from calcifer_bot.reply import Reply, Status, Visibility
from tests.conftest import ChatBot, FakeClock, make_settings


async def audit_rows(core: Core) -> list[AuditEntry]:
    return await core.db.read(lambda s: list(s.scalars(select(AuditEntry).order_by(AuditEntry.id))))


async def grants(core: Core) -> dict[str, str]:
    return await core.db.read(lambda s: {g.identity: g.role for g in s.scalars(select(RoleGrant))})


@pytest.mark.parametrize(
    ("user", "groups", "role"),
    [
        ("console:local", frozenset(), "admin"),
        ("slack:UADMIN", frozenset(), "admin"),
        ("slack:UOPS", frozenset(), "operator"),
        ("slack:USOMEONE", frozenset(), "viewer"),
        ("discord:77", frozenset({"discord-role:900"}), "operator"),
    ],
)
@pytest.mark.parametrize(
    "settings_env",
    [{"CALCIFER_ADMINS": "slack:UADMIN", "CALCIFER_OPERATORS": "slack:UOPS,discord-role:900"}],
)
async def test_roles_come_from_configuration(
    bot: ChatBot, user: str, groups: frozenset[str], role: str
) -> None:
    reply = await bot.say("whoami", user=user, groups=groups)
    assert f", {role} (" in reply.text


async def test_viewer_is_denied_an_admin_command_and_nothing_is_written(bot: ChatBot) -> None:
    reply = await bot.say("role grant slack:UX admin --yes", user="slack:USOMEONE")
    assert not reply.ok
    assert reply.title == "Not allowed"
    assert "needs the admin role; you are viewer" in reply.text
    assert reply.visibility is Visibility.EPHEMERAL
    assert await grants(bot.core) == {}
    assert (await audit_rows(bot.core))[-1].outcome == "denied"


async def test_hard_to_undo_commands_ask_first_and_the_button_confirms(bot: ChatBot) -> None:
    asked = await bot.say("role grant slack:U9 operator", user="slack:UADMIN")
    assert asked.status is Status.WARNING
    assert await grants(bot.core) == {}, "asking must not act"
    confirm, cancel = asked.buttons
    assert (confirm.label, cancel.label, cancel.command) == ("Confirm", "Cancel", None)

    # A button press is dispatched like typed text, so a viewer pressing it is refused.
    refused = await bot.say(confirm.command, user="slack:USOMEONE")
    assert refused.title == "Not allowed"
    assert await grants(bot.core) == {}

    done = await bot.say(confirm.command, user="slack:UADMIN")
    assert done.status is Status.OK
    assert await grants(bot.core) == {"slack:U9": "operator"}
    assert "operator" in (await bot.say("whoami", user="slack:U9")).text
    outcomes = [row.outcome for row in await audit_rows(bot.core)]
    assert outcomes[:3] == ["confirm", "denied", "ok"]


async def test_granted_roles_can_be_taken_back(bot: ChatBot) -> None:
    await bot.say("role grant slack:U9 admin --yes")
    assert "admin" in (await bot.say("whoami", user="slack:U9")).text
    assert (await bot.say("role revoke slack:U9")).ok
    assert "viewer" in (await bot.say("whoami", user="slack:U9")).text
    again = await bot.say("role revoke slack:U9")
    assert not again.ok
    assert "has no role granted in chat" in again.text


async def test_every_command_is_audited(bot: ChatBot, clock: FakeClock) -> None:
    await bot.say("status", user="slack:UOPS", channel="C42")
    await bot.say("frobnicate", user="slack:UOPS", channel="C42")
    first, second = await audit_rows(bot.core)
    assert (first.identity, first.platform, first.channel) == ("slack:UOPS", "slack", "C42")
    assert (first.command, first.text, first.outcome) == ("status", "status", "ok")
    assert first.at == clock.now
    assert first.duration_ms >= 0
    assert (second.command, second.outcome) == (None, "usage")


@pytest.fixture
def failing_core(core: Core) -> Core:
    registry = Registry()

    @registry.command("explode", summary="Fails on purpose")
    async def explode(ctx: Context) -> Reply:
        raise RuntimeError("database password is hunter2 in /etc/secret")

    @registry.command("echo", summary="Echo", args=[Arg("text", rest=True)])
    async def echo(ctx: Context, text: str) -> Reply:
        return Reply(title=text, text=text, footer=text)

    return Core(core.settings, core.db, registry=registry, clock=core.clock)


async def test_a_crashing_handler_gives_an_error_id_and_no_traceback(
    failing_core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        reply = await ChatBot(failing_core).say("explode")
    assert not reply.ok
    assert "Something went wrong running `explode` (error id " in reply.text
    assert "hunter2" not in reply.text and "Traceback" not in reply.text
    row = (await audit_rows(failing_core))[-1]
    assert row.outcome == "failed"
    assert row.error_id and row.error_id in reply.text
    assert row.error_id in caplog.text and "RuntimeError: database password" in caplog.text


@pytest.mark.parametrize("settings_env", [{"SLACK_BOT_TOKEN": "xoxb-very-secret-token"}])
async def test_secrets_never_reach_a_reply_or_the_audit_log(failing_core: Core) -> None:
    reply = await ChatBot(failing_core).say("echo my token is xoxb-very-secret-token")
    for shown in (reply.text, reply.title, reply.footer):
        assert "xoxb-very-secret-token" not in shown
        assert "my token is ***" in shown
    assert (await audit_rows(failing_core))[-1].text == "echo my token is ***"


@pytest.mark.parametrize(
    ("text", "visibility"),
    [
        ("help", Visibility.EPHEMERAL),
        ("whoami", Visibility.EPHEMERAL),
        ("status", Visibility.CHANNEL),
        ("frobnicate", Visibility.EPHEMERAL),
    ],
)
async def test_visibility_follows_the_declaration(
    bot: ChatBot, text: str, visibility: Visibility
) -> None:
    assert (await bot.say(text)).visibility is visibility


async def test_empty_message_gets_help(bot: ChatBot) -> None:
    assert (await bot.say("   ")).title == "Calcifer commands"


async def test_status_counts_what_is_in_the_database(bot: ChatBot, clock: FakeClock) -> None:
    now = clock.now

    def seed(session) -> None:
        for name, state in [("a", "up"), ("b", "up"), ("c", "down"), ("d", "unknown")]:
            session.add(
                Endpoint(
                    name=name,
                    kind="tcp",
                    target="h:1",
                    state=state,
                    created_at=now,
                    updated_at=now,
                    muted_until=now.replace(year=2027) if name == "d" else None,
                )
            )
        session.flush()
        session.add(
            Incident(
                endpoint_id=session.scalar(select(Endpoint.id).where(Endpoint.name == "c")),
                started_at=now,
            )
        )

    assert (await bot.say("status")).text == "All clear."
    await bot.core.db.write(seed)
    reply = await bot.say("status")
    shown = {f.name: f.value for f in reply.fields}
    assert (reply.status, reply.text) == (Status.ERROR, "1 endpoint down.")
    assert (shown["Endpoints"], shown["Up"], shown["Down"], shown["Muted"]) == ("4", "2", "1", "1")
    assert shown["Open incidents"] == "1"
    assert "Undeliverable messages" not in shown


async def test_status_warns_of_undeliverable_messages(bot: ChatBot, clock: FakeClock) -> None:
    def seed(session) -> None:
        for n, state in enumerate(["dead", "dead", "pending", "sent"]):
            session.add(
                OutboxMessage(
                    dedupe_key=f"k{n}",
                    destination="slack:C1",
                    kind="alert",
                    payload={},
                    status=state,
                    available_at=clock.now,
                    created_at=clock.now,
                )
            )

    await bot.core.db.write(seed)
    reply = await bot.say("status")
    shown = {f.name: f.value for f in reply.fields}
    assert (reply.status, reply.text) == (
        Status.WARNING,
        "2 messages could not be delivered; `notify retry` tries them again.",
    )
    assert shown["Queued messages"] == "1"
    assert shown["Undeliverable messages"] == "`slack:C1`: 2"


TEXT = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(
            [
                "help",
                "status",
                "role",
                "grant",
                "revoke",
                "whoami",
                "--yes",
                "--",
                '"',
                "'",
                "“",
                "slack:U1",
                "admin",
                "--x=",
                "-",
                "\\",
                "\x00",
                "90s",
            ]
        ),
        max_size=6,
    ).map(" ".join),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXT, user=st.sampled_from(["console:local", "slack:UOPS", "discord:1"]))
async def test_any_input_gets_a_reply_never_an_exception(
    tmp_path_factory: pytest.TempPathFactory, text: str, user: str
) -> None:
    core = await _shared_core(tmp_path_factory)
    reply = await ChatBot(core).say(text, user=user)
    assert isinstance(reply, Reply)
    assert reply.text
    assert "Traceback" not in reply.text
    assert "Something went wrong" not in reply.text, f"{text!r} crashed a handler"


_cores: dict[str, Core] = {}


async def _shared_core(factory: pytest.TempPathFactory) -> Core:
    # One migrated SQLite file for all examples: hypothesis calls the test many times.
    if "core" not in _cores:
        from calcifer_bot.aio import blocking
        from calcifer_bot.db import Database

        url = f"sqlite:///{factory.mktemp('prop') / 'calcifer.db'}"
        db = Database(url)
        await blocking(db.upgrade)
        _cores["core"] = Core(make_settings(url), db, clock=lambda: datetime.now(UTC))
    return _cores["core"]


async def test_admins_can_read_the_audit_log(bot: ChatBot, clock: FakeClock) -> None:
    await bot.say("whoami", user="slack:UOPS", channel="C7")
    await bot.say("frobnicate", user="slack:USOMEONE")
    denied = await bot.say("audit", user="slack:UOPS")
    assert denied.title == "Not allowed"

    reply = await bot.say("audit 5", user="slack:UADMIN")
    lines = reply.text.splitlines()
    assert lines == [
        "2026-12-03 12:00:00 `slack:UOPS` in slack:C7: `whoami` → ok",
        "2026-12-03 12:00:00 `slack:USOMEONE` in slack:C1: `frobnicate` → usage",
        "2026-12-03 12:00:00 `slack:UOPS` in slack:C1: `audit` → denied",
    ]
    only = await bot.say("audit --user slack:USOMEONE", user="slack:UADMIN")
    assert only.text.splitlines() == [lines[1]]
