"""The console adapter: plain-text rendering, numbered buttons, the interactive prompt."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from prompt_toolkit.application.current import create_app_session
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from adapters.console import ConsoleAdapter, render
from calcifer_bot.core import Core
from calcifer_bot.reply import Attachment, Button, Field, Reply, Status


def test_render_shows_every_part_of_a_reply() -> None:
    reply = Reply(
        title="Endpoint `nas` is down",
        text="No answer from `nas.lan`.\nChecked 3 times.",
        status=Status.WARNING,
        fields=(Field("Target", "`nas.lan`"), Field("Last error", "timed out\nafter 5 s", False)),
        footer="Run `check nas` to try again.",
        attachments=(Attachment("graph.png", b"\x89PNG"),),
        buttons=(Button("Confirm", "mute nas 1h --yes", "danger"), Button("Cancel", None)),
    )

    assert render(reply) == (
        "! Endpoint nas is down\n"
        "No answer from nas.lan.\n"
        "Checked 3 times.\n"
        "  Target: nas.lan\n"
        "  Last error:\n"
        "    timed out\n"
        "    after 5 s\n"
        "Run check nas to try again.\n"
        "  (attachment graph.png, 4 bytes)\n"
        "  [1] Confirm   [2] Cancel"
    )


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (Reply.error("No endpoint named `web`."), "✗ No endpoint named web."),
        (Reply(text="Muted `web` for 1h.", status=Status.OK), "✓ Muted web for 1h."),
        (Reply(text="Nothing to report."), "Nothing to report."),
    ],
    ids=["error", "ok", "info"],
)
def test_render_without_title_marks_the_text(reply: Reply, shown: str) -> None:
    assert render(reply) == shown


def console(core: Core) -> tuple[ConsoleAdapter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return ConsoleAdapter(core, out=out, err=err), out, err


async def test_run_one_prints_replies_and_errors_where_asked(core: Core) -> None:
    adapter, out, err = console(core)

    await adapter.run_one("whoami")
    await adapter.run_one("frobnicate")
    assert "You are console:local, admin (console user)." in out.getvalue()
    assert "✗ Unknown command 'frobnicate'" in out.getvalue()
    assert err.getvalue() == ""

    out.seek(0)
    out.truncate()
    reply = await adapter.run_one("frobnicate", errors_to_stderr=True)
    assert not reply.ok
    assert "✗ Unknown command 'frobnicate'" in err.getvalue()
    assert out.getvalue() == ""


async def test_pressing_confirm_runs_the_confirmed_command(core: Core) -> None:
    adapter, out, _ = console(core)

    asked = await adapter.run_one("role grant slack:U9 operator")
    assert [b.label for b in asked.buttons] == ["Confirm", "Cancel"]
    assert "[1] Confirm   [2] Cancel" in out.getvalue()

    done = await adapter.run_one("1")
    assert done.ok
    assert "→ role grant slack:U9 operator --yes" in out.getvalue()
    assert "slack:U9 is now operator" in out.getvalue()

    await adapter.run_one("roles")
    assert "slack:U9: operator (by console:local)" in out.getvalue()


async def test_pressing_cancel_does_nothing(core: Core) -> None:
    adapter, out, _ = console(core)
    await adapter.run_one("role grant slack:U9 operator")

    await adapter.run_one("2")
    assert "Cancel: nothing done." in out.getvalue()

    out.seek(0)
    out.truncate()
    await adapter.run_one("roles")
    assert "slack:U9" not in out.getvalue()
    # The buttons are spent: "1" is now just an unknown command.
    assert not (await adapter.run_one("1")).ok
    assert "slack:U9" not in out.getvalue()


@pytest.mark.parametrize("text", ["1", "٣", "²"], ids=["ascii", "arabic-indic", "superscript"])
async def test_a_number_without_buttons_is_an_ordinary_command(core: Core, text: str) -> None:
    adapter, out, _ = console(core)

    reply = await adapter.run_one(text)

    assert not reply.ok
    assert "Unknown command" in out.getvalue()


async def interact(core: Core, keys: str, history: Path, *, ctrl_c_exits: bool = False) -> str:
    """Type ``keys`` at a real prompt_toolkit prompt; return what the console printed."""
    adapter, out, _ = console(core)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(keys)
        await asyncio.wait_for(adapter.run_interactive(history, ctrl_c_exits=ctrl_c_exits), 10)
    return out.getvalue()


async def test_interactive_prompt_answers_and_keeps_history(core: Core, tmp_path: Path) -> None:
    history = tmp_path / "state" / "calcifer" / "chat_history"

    shown = await interact(core, "whoami\r\x04", history)

    assert "You are console:local, admin (console user)." in shown
    assert list(FileHistory(str(history)).load_history_strings()) == ["whoami"]


@pytest.mark.parametrize(("ctrl_c_exits", "answered"), [(False, True), (True, False)])
async def test_interactive_ctrl_c(
    core: Core, tmp_path: Path, ctrl_c_exits: bool, answered: bool
) -> None:
    shown = await interact(
        core, "\x03whoami\r\x04", tmp_path / "history", ctrl_c_exits=ctrl_c_exits
    )

    assert ("You are console:local" in shown) is answered
