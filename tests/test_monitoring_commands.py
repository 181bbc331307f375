"""Monitoring from chat: commands through the dispatcher, the scheduler running real
checks against servers on 127.0.0.1, alerts delivered by the console adapter.

The clock is fake and moved by hand; the checks are real.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select

from adapters.console import ConsoleAdapter
from calcifer_bot.core import Core
from calcifer_bot.endpoints import definitions_from_config, sync_from_config
from calcifer_bot.engine import endpoint_named
from calcifer_bot.errors import ConfigError
from calcifer_bot.models import Endpoint, Incident
from calcifer_bot.outbox import deliver_pending
from calcifer_bot.reply import Status
from calcifer_bot.web import build_app
from tests.conftest import ChatBot, FakeClock
from tests.localhttp import serve

OPS = "slack:UOPS"
VIEWER = "slack:UVIEW"


@dataclass
class Site:
    """A local web server whose answer the test changes."""

    url: str
    status: int = 200


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site(url="")

    async def page(_request: web.Request) -> web.Response:
        return web.Response(status=state.status, text="hello from the NAS")

    app = web.Application()
    app.router.add_get("/", page)
    runner, base = await serve(app)
    state.url = base + "/"
    yield state
    await runner.cleanup()


async def tick(core: Core, clock: FakeClock, seconds: float = 10) -> None:
    clock.advance(timedelta(seconds=seconds))
    await core.scheduler.tick(wait=True)


async def count(core: Core, model: Any) -> int:
    return await core.db.read(lambda s: s.scalar(select(func.count()).select_from(model)))


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("endpoint add a htp x", "unknown type 'htp'"),
        ("endpoint add a tcp host-without-port", "tcp needs a port"),
        ("endpoint add a tcp 10.0.0.1:70000", "port"),
        ("endpoint add a http ht!tp://[bad", "URL"),
        ("endpoint add a icmp 10.0.0.1 --interval 0s", "--interval must be above zero"),
        ("endpoint add a icmp 10.0.0.1 --interval -5s", "expected a duration"),
        ("endpoint add a icmp 10.0.0.1 --depends-on ghost", "no endpoint by that name"),
        ("endpoint add a icmp 10.0.0.1 --depends-on a", "cannot depend on itself"),
        ("endpoint add 'bad name' icmp 10.0.0.1", "must start with a letter or digit"),
        ("endpoint add a icmp 10.0.0.1 --quorum 2", "--quorum needs --group"),
        ("endpoint add a icmp 10.0.0.1 --remind 1m", "at least 5m"),
    ],
)
async def test_bad_endpoint_definitions_are_refused_and_nothing_is_written(
    bot: ChatBot, core: Core, command: str, error: str
) -> None:
    reply = await bot.say(command, user=OPS)

    assert reply.status is Status.ERROR
    assert error.lower() in reply.text.lower()
    assert "Usage: `endpoint add" in reply.text
    assert await count(core, Endpoint) == 0


async def test_a_duplicate_name_is_refused(bot: ChatBot, core: Core) -> None:
    assert (await bot.say("endpoint add nas icmp 127.0.0.1", user=OPS)).ok

    reply = await bot.say("endpoint add nas tcp 127.0.0.1:22", user=OPS)

    assert not reply.ok
    assert "exists already" in reply.text
    assert await count(core, Endpoint) == 1


async def test_viewers_read_but_do_not_add_and_removal_asks_first(bot: ChatBot, core: Core) -> None:
    denied = await bot.say("endpoint add nas icmp 127.0.0.1", user=VIEWER)
    assert denied.title == "Not allowed"
    await bot.say("endpoint add nas icmp 127.0.0.1", user=OPS)
    assert "nas" in (await bot.say("endpoint list", user=VIEWER)).text

    ask = await bot.say("endpoint remove nas", user="slack:UADMIN")
    assert ask.title == "Confirm endpoint remove"
    assert await count(core, Endpoint) == 1
    done = await bot.say("endpoint remove nas --yes", user="slack:UADMIN")
    assert done.ok
    assert await count(core, Endpoint) == 0


async def test_an_outage_is_detected_alerted_and_resolved_end_to_end(
    bot: ChatBot, core: Core, clock: FakeClock, site: Site
) -> None:
    added = await bot.say(
        f"endpoint add nas http {site.url} --service storage --channel console", user=OPS
    )
    assert added.ok, added.text
    await tick(core, clock, 0)
    assert "🟢 *nas*" in (await bot.say("endpoint list")).text

    site.status = 503
    for _ in range(3):
        await tick(core, clock, 60)
    down = await bot.say("endpoint list --down")
    assert "nas" in down.text
    assert "HTTP 503" in down.text
    status = await bot.say("status")
    assert status.status is Status.ERROR
    assert "1 endpoint down." in status.text

    out = io.StringIO()
    console = ConsoleAdapter(core, out=out)
    assert await deliver_pending(core.outbox, console.deliver, ("console",)) == 1
    assert "✗ nas is down" in out.getvalue()
    assert "Error: HTTP 503" in out.getvalue()

    site.status = 200
    await tick(core, clock, 60)
    await tick(core, clock, 10)
    assert await deliver_pending(core.outbox, console.deliver, ("console",)) == 2
    printed = out.getvalue()
    assert "↳ ✓ nas is back up" in printed
    assert "(updated) ✓ Resolved: nas was down for" in printed

    history = await bot.say("incidents")
    assert "#1 nas: HTTP 503" in history.text
    assert "resolved after" in history.text


async def test_check_now_answers_with_the_result_and_counts_toward_the_state(
    bot: ChatBot, core: Core, site: Site
) -> None:
    await bot.say(f"endpoint add nas http {site.url} --failures 2", user=OPS)

    ok = await bot.say("check nas", user=OPS)
    assert ok.title == "nas: up"
    assert "answered in" in ok.text
    site.status = 503
    first = await bot.say("check nas", user=OPS)
    assert first.title == "nas: down"
    assert "1 of 2 failures before it counts as down" in first.text
    second = await bot.say("check nas", user=OPS)
    assert "It is down." in second.text


async def test_mute_unmute_and_maintenance_from_chat(
    bot: ChatBot, core: Core, clock: FakeClock, site: Site
) -> None:
    await bot.say(f"endpoint add nas http {site.url}", user=OPS)

    muted = await bot.say("mute nas 2h swapping disks", user=OPS)
    assert "Muted nas for 2h" in muted.text
    shown = await bot.say("endpoint show nas")
    assert any("swapping disks" in f.value for f in shown.fields if f.name == "Muted")
    assert (await bot.say("unmute nas", user=OPS)).ok
    again = await bot.say("unmute nas", user=OPS)
    assert "Nas is not muted" in again.text

    planned = await bot.say("maintenance nas now 1h", user=OPS)
    assert planned.ok, planned.text
    site.status = 503
    for _ in range(4):
        await tick(core, clock, 60)
    [incident] = await core.db.read(lambda s: list(s.scalars(select(Incident))))
    assert incident.suppressed == "maintenance"
    assert await core.outbox.pending(("console",)) == 0

    bad = await bot.say("maintenance nas tomorrow 1h", user=OPS)
    assert "START 'tomorrow'" in bad.text


async def test_ack_by_number_or_name(
    bot: ChatBot, core: Core, clock: FakeClock, site: Site
) -> None:
    await bot.say(f"endpoint add nas http {site.url}", user=OPS)
    await tick(core, clock, 0)
    site.status = 500
    for _ in range(3):
        await tick(core, clock, 60)

    missing = await bot.say("ack 99", user=OPS)
    assert "there is no incident #99" in missing.text
    acked = await bot.say("ack nas on it", user=OPS)
    assert acked.text == "Incident #1 acknowledged by slack:UOPS. Reminders stop."
    assert "already acknowledged" in (await bot.say("ack #1", user=OPS)).text


async def test_uptime_graph_and_doc(bot: ChatBot, core: Core, clock: FakeClock, site: Site) -> None:
    await bot.say(f"endpoint add nas http {site.url}", user=OPS)
    for _ in range(5):
        await tick(core, clock, 60)

    uptime = await bot.say("uptime nas 24h")
    assert uptime.title == "nas: uptime over 1d"
    fields = {f.name: f.value for f in uptime.fields}
    assert fields["Uptime"] == "100.00 %"
    assert fields["Checks"] == "5 (0 failed)"
    graph = await bot.say("graph nas 1h")
    assert graph.attachments[0].content.startswith(b"\x89PNG")
    doc = await bot.say("doc nas")
    assert doc.text.startswith("#")
    assert site.url in doc.text
    assert "not a window" not in (await bot.say("uptime nas 2m")).text
    assert "window from 5m" in (await bot.say("uptime nas 2m")).text


async def test_push_endpoints_go_down_without_heartbeats_and_recover_on_one(
    bot: ChatBot, core: Core, clock: FakeClock
) -> None:
    added = await bot.say("endpoint add backup push --interval 60s", user=OPS)
    url = next(f.value for f in added.fields if f.name == "Push URL")
    token = url.split("/push/")[1].split("`")[0]
    aps = AsyncIOScheduler(timezone=UTC)

    async with TestClient(TestServer(build_app(core, aps))) as client:
        assert (await client.get(f"/push/{token}")).status == 200
        for _ in range(4):
            await tick(core, clock, 70)
        assert "backup" in (await bot.say("endpoint list --down")).text

        for _ in range(2):
            response = await client.post(f"/push/{token}")
            assert await response.json() == {"ok": True, "endpoint": "backup"}
        unknown = await client.get("/push/nope")
        assert unknown.status == 404

    assert "Nothing is down." in (await bot.say("endpoint list --down")).text


async def test_endpoints_from_the_config_file_are_synced_and_validated(
    core: Core, clock: FakeClock
) -> None:
    entries = (
        {"name": "router", "type": "icmp", "target": "10.0.0.1"},
        {"name": "nas", "type": "tcp", "target": "10.0.0.2:445", "depends-on": "router",
         "interval": "30s"},
    )  # fmt: skip
    defs = definitions_from_config(entries)
    changes = await core.db.write(lambda s: sync_from_config(s, defs, clock()))
    assert changes == ["added router", "added nas"]

    again = await core.db.write(lambda s: sync_from_config(s, defs, clock()))
    assert again == []
    await core.db.write(lambda s: setattr(endpoint_named(s, "nas"), "state", "down"))
    slower = definitions_from_config((entries[0], {**entries[1], "interval": "90s"}))
    assert await core.db.write(lambda s: sync_from_config(s, slower, clock())) == ["updated nas"]
    nas = await core.db.read(lambda s: endpoint_named(s, "nas"))
    assert (nas.interval_s, nas.state) == (90.0, "down")  # changed, and its state kept
    fewer = definitions_from_config(entries[:1])
    assert await core.db.write(lambda s: sync_from_config(s, fewer, clock())) == ["removed nas"]

    with pytest.raises(ConfigError, match=r"#1 \(a\): unknown field 'colour'"):
        definitions_from_config(({"name": "a", "type": "icmp", "colour": "red"},))
    with pytest.raises(ConfigError, match="dependency cycle a -> b -> a"):
        definitions_from_config(
            (
                {"name": "a", "type": "icmp", "target": "h", "depends-on": "b"},
                {"name": "b", "type": "icmp", "target": "h", "depends-on": "a"},
            )
        )
    bad = definitions_from_config(({"name": "x", "type": "tcp", "target": "h"},))
    with pytest.raises(ConfigError, match=r"\[\[endpoints\]\] x: tcp needs a port"):
        await core.db.write(lambda s: sync_from_config(s, bad, clock()))
    assert await count(core, Endpoint) == 1  # the failed sync changed nothing


async def test_the_seed_api_checks_and_records_an_endpoint(
    bot: ChatBot, core: Core, site: Site
) -> None:
    import integrations

    await bot.say(f"endpoint add nas http {site.url} --failures 1", user=OPS)
    ep = await core.db.read(lambda s: s.scalars(select(Endpoint)).one())
    monitoring = integrations.get("monitoring")

    assert await monitoring.check_endpoint(ep) == (True, None)  # type: ignore[attr-defined]
    assert await monitoring.update_endpoint_status(ep, core.db) is True  # type: ignore[attr-defined]
    site.status = 503
    assert await monitoring.update_endpoint_status(ep, core.db) is False  # type: ignore[attr-defined]
    assert await count(core, Incident) == 1
