"""help is generated from the registry and shows only what the caller may run."""

import pytest

from tests.conftest import ChatBot


async def test_help_lists_commands_with_usage_and_summary(bot: ChatBot) -> None:
    reply = await bot.say("help", user="slack:UADMIN")
    assert "`status` — Endpoints up and down" in reply.text
    assert "`role grant IDENTITY ROLE [--yes]` — Give someone a role" in reply.text
    assert "You are admin" in reply.footer


async def test_help_hides_what_a_viewer_may_not_run(bot: ChatBot) -> None:
    reply = await bot.say("help", user="slack:USOMEONE")
    assert "`whoami`" in reply.text
    assert "role grant" not in reply.text and "role revoke" not in reply.text
    denied = await bot.say("help role grant", user="slack:USOMEONE")
    assert not denied.ok
    assert denied.text == "`role grant` needs the admin role; you are viewer."


async def test_help_for_one_command(bot: ChatBot) -> None:
    reply = await bot.say("help role grant")
    assert reply.title == "role grant"
    assert "Usage: `role grant IDENTITY ROLE [--yes]`" in reply.text
    assert "`IDENTITY` — a platform-qualified id" in reply.text
    fields = {f.name: f.value for f in reply.fields}
    assert fields["Role"] == "admin"
    assert fields["Confirmation"] == "asks first; `--yes` skips"
    assert "role grant slack:U0123ABC operator" in fields["Examples"]


async def test_help_for_a_group_and_an_alias(bot: ChatBot) -> None:
    group = await bot.say("help role")
    assert group.title == "role commands"
    assert "role grant" in group.text and "role revoke" in group.text
    assert (await bot.say("?")).title == "Calcifer commands"


@pytest.mark.parametrize(
    ("text", "message"),
    [("help stauts", "did you mean `status`?"), ("help role frob", "did you mean one of")],
)
async def test_help_for_something_unknown_suggests(bot: ChatBot, text: str, message: str) -> None:
    reply = await bot.say(text)
    assert not reply.ok
    assert message in reply.text
