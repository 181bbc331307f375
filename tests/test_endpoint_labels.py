"""Endpoint tags and severity: what notification routes match, set in chat or in
the TOML file, shown by `endpoint show` and `doc`, filtered by `endpoint list --tag`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from calcifer_bot.config import load_settings
from calcifer_bot.core import Core
from calcifer_bot.endpoints import definitions_from_config, sync_from_config
from calcifer_bot.engine import endpoint_named
from calcifer_bot.errors import ConfigError
from calcifer_bot.models import Endpoint
from calcifer_bot.reply import Reply, Status
from tests.conftest import ChatBot, FakeClock

OPS = "slack:UOPS"


def fields(reply: Reply) -> dict[str, str]:
    return {f.name: f.value for f in reply.fields}


async def count(core: Core) -> int:
    return await core.db.read(lambda s: s.scalar(select(func.count()).select_from(Endpoint)))


async def test_tags_and_severity_given_in_chat_are_shown(bot: ChatBot) -> None:
    added = await bot.say(
        "endpoint add web tcp 10.0.0.1:443 --tags Web,prod,web --severity Warning", user=OPS
    )
    assert added.ok, added.text

    shown = fields(await bot.say("endpoint show web"))

    # Lowercased, the duplicate dropped, the order kept.
    assert shown["Tags"] == "web, prod"
    assert shown["Severity"] == "warning"


async def test_without_them_an_endpoint_is_critical_and_untagged(bot: ChatBot) -> None:
    await bot.say("endpoint add nas tcp 10.0.0.2:445", user=OPS)

    shown = fields(await bot.say("endpoint show nas"))

    assert shown["Severity"] == "critical"
    assert "Tags" not in shown


async def test_help_documents_the_new_flags(bot: ChatBot) -> None:
    add = await bot.say("help endpoint add")
    assert "[--tags a,b]" in add.text and "[--severity SEVERITY]" in add.text
    listing = await bot.say("help endpoint list")
    assert "Usage: `endpoint list [--down] [--tag TAG]`" in listing.text


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        ("--severity urgent", "--severity must be one of critical, warning, info, not 'urgent'"),
        ("--tags web,b@d", "--tags: 'b@d' contains '@'"),
        ("--tags _hidden", "--tags: '_hidden' must start with a letter a-z or a digit"),
        (f"--tags {'x' * 51}", "is longer than 50 characters"),
        ("--tags " + ",".join(f"t{n}" for n in range(21)), "--tags: at most 20 tags, got 21"),
    ],
)
async def test_bad_tags_or_severity_are_refused_and_nothing_is_written(
    bot: ChatBot, core: Core, flags: str, error: str
) -> None:
    reply = await bot.say(f"endpoint add web tcp 10.0.0.1:443 {flags}", user=OPS)

    assert reply.status is Status.ERROR
    assert error in reply.text
    assert len(reply.text.splitlines()[0]) < 120  # one short line, then the usage
    assert await count(core) == 0


async def test_twenty_tags_are_enough_and_repeats_do_not_count(bot: ChatBot) -> None:
    tags = ",".join(f"t{n}" for n in range(20))
    reply = await bot.say(f"endpoint add web tcp 10.0.0.1:443 --tags {tags},t0,T1", user=OPS)

    assert reply.ok, reply.text
    assert fields(await bot.say("endpoint show web"))["Tags"] == tags.replace(",", ", ")


async def test_list_by_tag_matches_whole_tags_and_combines_with_down(
    bot: ChatBot, core: Core
) -> None:
    for command in (
        "endpoint add web-1 tcp 10.0.0.1:443 --tags web,prod",
        "endpoint add web-2 tcp 10.0.0.2:443 --tags web",
        "endpoint add app tcp 10.0.0.3:443 --tags webapp,prod",
        "endpoint add nas tcp 10.0.0.4:445",
    ):
        assert (await bot.say(command, user=OPS)).ok
    await core.db.write(lambda s: setattr(endpoint_named(s, "web-2"), "state", "down"))

    web = await bot.say("endpoint list --tag WEB")
    assert web.title == "Endpoints tagged web"
    assert names(web) == ["web-1", "web-2"]  # not app: webapp is another tag
    assert names(await bot.say("endpoint list --tag prod")) == ["app", "web-1"]

    down = await bot.say("endpoint list --down --tag web")
    assert down.title == "Endpoints tagged web down"
    assert names(down) == ["web-2"]
    assert (await bot.say("endpoint list --tag prod --down")).text == "Nothing tagged prod is down."
    assert (await bot.say("endpoint list --tag db")).text == "No endpoints tagged db."
    assert len(names(await bot.say("endpoint list"))) == 4

    bad = await bot.say("endpoint list --tag 'we b'")
    assert bad.status is Status.ERROR and "'we b' contains ' '" in bad.text


def names(reply: Reply) -> list[str]:
    return [line.split("*")[1] for line in reply.text.splitlines()]


async def test_doc_mentions_tags_and_severity(bot: ChatBot) -> None:
    await bot.say("endpoint add web tcp 10.0.0.1:443 --tags web,prod --severity info", user=OPS)
    await bot.say("endpoint add nas tcp 10.0.0.2:445", user=OPS)

    web = (await bot.say("doc web")).text
    nas = (await bot.say("doc nas")).text

    assert "| Tags | `web`, `prod` |" in web and "| Severity | info |" in web
    assert "| Tags |" not in nas and "| Severity | critical |" in nas


# -- the TOML file ---------------------------------------------------------------

ENTRIES: tuple[dict[str, Any], ...] = (
    {"name": "router", "type": "icmp", "target": "10.0.0.1", "tags": ["net", "Core"],
     "severity": "critical"},
    {"name": "printer", "type": "tcp", "target": "10.0.0.9:631", "tags": "office, lan",
     "severity": "info"},
)  # fmt: skip


async def test_tags_and_severity_from_the_file_are_synced_and_follow_its_changes(
    bot: ChatBot, core: Core, clock: FakeClock
) -> None:
    async def sync(entries: tuple[dict[str, Any], ...]) -> list[str]:
        defs = definitions_from_config(entries)
        return await core.db.write(lambda s: sync_from_config(s, defs, clock()))

    assert await sync(ENTRIES) == ["added router", "added printer"]
    router = fields(await bot.say("endpoint show router"))
    printer = fields(await bot.say("endpoint show printer"))
    assert (router["Tags"], router["Severity"]) == ("net, core", "critical")
    assert (printer["Tags"], printer["Severity"]) == ("office, lan", "info")
    assert await sync(ENTRIES) == []  # the same file changes nothing

    await core.db.write(lambda s: setattr(endpoint_named(s, "printer"), "state", "down"))
    retagged = (ENTRIES[0], {**ENTRIES[1], "tags": ["office"]})
    assert await sync(retagged) == ["updated printer"]
    printer = fields(await bot.say("endpoint show printer"))
    assert printer["Tags"] == "office"
    assert printer["State"] == "down"  # updated, its state kept
    assert (await bot.say("endpoint list --tag lan")).text == "No endpoints tagged lan."

    quieter = ({**ENTRIES[0], "severity": "warning"}, retagged[1])
    assert await sync(quieter) == ["updated router"]
    assert fields(await bot.say("endpoint show router"))["Severity"] == "warning"


async def test_a_config_file_with_tags_and_severity_loads_and_syncs(
    bot: ChatBot, core: Core, clock: FakeClock, tmp_path: Path
) -> None:
    config = tmp_path / "calcifer.toml"
    config.write_text(
        "[[endpoints]]\n"
        'name = "web"\ntype = "tcp"\ntarget = "10.0.0.1:443"\n'
        'tags = ["web", "prod"]\nseverity = "warning"\n'
        "[[endpoints]]\n"
        'name = "lab"\ntype = "tcp"\ntarget = "10.0.0.2:22"\ntags = "lab, test"\n'
    )
    settings = load_settings(config, environ={})
    defs = definitions_from_config(settings.endpoints)

    assert await core.db.write(lambda s: sync_from_config(s, defs, clock())) == [
        "added web",
        "added lab",
    ]
    web = fields(await bot.say("endpoint show web"))
    assert (web["Tags"], web["Severity"]) == ("web, prod", "warning")
    lab = fields(await bot.say("endpoint show lab"))
    assert (lab["Tags"], lab["Severity"]) == ("lab, test", "critical")


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"tags": ["ok", 3]}, r"#1 \(x\): tags: expected a list of strings"),
        ({"tags": {"a": 1}}, r"#1 \(x\): tags: expected a list of strings"),
    ],
)
def test_tags_of_the_wrong_type_in_the_file_are_refused(entry: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        definitions_from_config(({"name": "x", "type": "icmp", "target": "h", **entry},))


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"tags": "web,b@d"}, r"\[\[endpoints\]\] x: --tags: 'b@d' contains '@'"),
        ({"severity": "loud"}, r"\[\[endpoints\]\] x: --severity must be one of critical"),
    ],
)
async def test_bad_tags_or_severity_in_the_file_stop_the_sync(
    core: Core, clock: FakeClock, entry: dict[str, Any], error: str
) -> None:
    defs = definitions_from_config(({"name": "x", "type": "icmp", "target": "h", **entry},))

    with pytest.raises(ConfigError, match=error):
        await core.db.write(lambda s: sync_from_config(s, defs, clock()))
    assert await count(core) == 0
