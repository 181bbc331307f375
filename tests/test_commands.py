"""The registry: one declaration gives parsing, usage and suggestions."""

from datetime import timedelta
from typing import Any

import pytest

from calcifer_bot.commands import Arg, Context, Registry, choice, duration, integer
from calcifer_bot.errors import UsageError
from calcifer_bot.reply import Reply
from calcifer_bot.roles import Role


async def _ok(ctx: Context, **_: Any) -> Reply:
    return Reply(text="ok")


def _registry() -> Registry:
    reg = Registry()

    @reg.command(
        "endpoint add",
        summary="Add an endpoint",
        args=[
            Arg("name"),
            Arg("type", parse=choice("icmp", "tcp", "http")),
            Arg("target", default=""),
            Arg("port", parse=integer(1, 65535), option=True, default=None, metavar="N"),
            Arg("interval", parse=duration, option=True, default=timedelta(seconds=60)),
            Arg("verbose", switch=True),
        ],
        aliases=["add"],
        role=Role.OPERATOR,
    )
    async def endpoint_add(
        ctx: Context,
        name: str,
        type: str,
        target: str,
        port: int | None,
        interval: timedelta,
        verbose: bool,
    ) -> Reply:
        return Reply(text="added")

    @reg.command("mute", summary="Mute", args=[Arg("name"), Arg("reason", rest=True, default="")])
    async def mute(ctx: Context, name: str, reason: str) -> Reply:
        return Reply(text="muted")

    @reg.command("endpoint list", summary="List endpoints")
    async def endpoint_list(ctx: Context) -> Reply:
        return Reply(text="list")

    @reg.command("merge", summary="Merge", args=[Arg("branch")], role=Role.ADMIN, confirm=True)
    async def merge(ctx: Context, branch: str) -> Reply:
        return Reply(text="merged")

    return reg


REG = _registry()
ADD = REG.specs["endpoint add"]
DEFAULTS = {"target": "", "port": None, "interval": timedelta(seconds=60), "verbose": False}


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["web", "http"], {"name": "web", "type": "http"}),
        (["web", "HTTP", "example.org"], {"name": "web", "type": "http", "target": "example.org"}),
        (
            ["db", "tcp", "10.0.0.2", "--port", "5432"],
            {"name": "db", "type": "tcp", "target": "10.0.0.2", "port": 5432},
        ),
        (["db", "--port=5432", "tcp"], {"name": "db", "type": "tcp", "port": 5432}),
        (
            ["nas", "icmp", "--interval", "1h30m"],
            {"name": "nas", "type": "icmp", "interval": timedelta(minutes=90)},
        ),
        (["nas", "icmp", "--verbose"], {"name": "nas", "type": "icmp", "verbose": True}),
        (["--", "--odd", "tcp"], {"name": "--odd", "type": "tcp"}),
    ],
)
def test_bind(words: list[str], expected: dict[str, Any]) -> None:
    assert ADD.bind(words) == {**DEFAULTS, **expected}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "NAME is missing"),
        (["web"], "TYPE is missing"),
        (["web", "smtp"], "TYPE: expected one of icmp, tcp, http, got 'smtp'"),
        (["web", "tcp", "h", "extra"], "unexpected 'extra'"),
        (["web", "tcp", "--port"], "--port needs a value: --port N"),
        (["web", "tcp", "--port", "0"], "--port N: expected a number from 1 to 65535, got 0"),
        (["web", "tcp", "--port", "http"], "--port N: expected a whole number, got 'http'"),
        (["web", "tcp", "--port", "1", "--port", "2"], "--port is given twice"),
        (["web", "tcp", "--prot", "1"], "unknown option --prot; did you mean --port?"),
        (["web", "tcp", "--zzz"], "unknown option --zzz; endpoint add takes --port, --interval"),
        (["web", "tcp", "--verbose=yes"], "--verbose takes no value"),
        (["web", "tcp", "--interval", "90"], "did you mean 90s?"),
    ],
)
def test_bind_errors_name_the_argument(words: list[str], message: str) -> None:
    with pytest.raises(UsageError) as exc:
        ADD.bind(words)
    assert message in exc.value.message


def test_rest_takes_the_remaining_words_and_keeps_flags_out() -> None:
    spec = REG.specs["mute"]
    assert spec.bind(["nas", "disk", "swap"]) == {"name": "nas", "reason": "disk swap"}
    assert spec.bind(["nas"]) == {"name": "nas", "reason": ""}


def test_usage_line_is_generated() -> None:
    assert ADD.usage == (
        "endpoint add NAME TYPE [TARGET] [--port N] [--interval INTERVAL] [--verbose]"
    )
    assert REG.specs["mute"].usage == "mute NAME [REASON…]"
    assert REG.specs["merge"].usage == "merge BRANCH [--yes]"  # confirm adds --yes


@pytest.mark.parametrize(
    ("text", "name", "rest"),
    [
        ("endpoint add web http", "endpoint add", ["web", "http"]),
        ("ENDPOINT LIST", "endpoint list", []),
        ("add web http", "endpoint add", ["web", "http"]),  # alias
        ("mute nas 1h", "mute", ["nas", "1h"]),
    ],
)
def test_find_longest_name(text: str, name: str, rest: list[str]) -> None:
    spec, words = REG.find(text.split())
    assert (spec.name, words) == (name, rest)


@pytest.mark.parametrize(
    ("words", "role", "message"),
    [
        (["mtue", "x"], Role.ADMIN, "did you mean `mute`?"),
        (["endpoint", "lsit"], Role.ADMIN, "did you mean `endpoint list`?"),
        (["endpoint", "frob"], Role.ADMIN, "did you mean one of: endpoint add, endpoint list"),
        (["frobnicate"], Role.ADMIN, "did you mean one of: endpoint, merge, mute?"),
        (["frobnicate"], Role.VIEWER, "did you mean one of: endpoint, mute?"),  # merge hidden
        (["mreg"], Role.VIEWER, "did you mean one of"),  # never suggests what you cannot run
    ],
)
def test_unknown_command_suggests(words: list[str], role: Role, message: str) -> None:
    with pytest.raises(UsageError) as exc:
        REG.resolve(words, role)
    assert message in exc.value.message


def test_lookup_tells_adapters_the_command_without_running_it() -> None:
    assert REG.lookup("endpoint list").name == "endpoint list"
    assert REG.lookup("frobnicate") is None
    assert REG.lookup('mute "open') is None


def test_declaration_mistakes_fail_at_registration() -> None:
    reg = Registry()
    reg.command("status", summary="s")(_status := _make(""))
    with pytest.raises(ValueError, match="already registered: status"):
        reg.command("status", summary="again")(_make(""))
    with pytest.raises(ValueError, match="handler parameters"):
        reg.command("check", summary="c", args=[Arg("name")])(_status)
    assert "check" not in reg.specs


def _make(_: str):
    async def handler(ctx: Context) -> Reply:
        return Reply(text="")

    return handler


def test_visible_filters_by_role() -> None:
    assert [s.name for s in REG.visible(Role.VIEWER)] == ["endpoint list", "mute"]
    assert "merge" in [s.name for s in REG.visible(Role.ADMIN)]
