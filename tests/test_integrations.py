"""The integration registry: lazy singletons, connectivity, missing extras.

The integrations here are small classes written for the test: they stand for
"some integration" so the registry's own behaviour can be checked. Each real
integration has its own test file against a real local server.
"""

from __future__ import annotations

import asyncio

import pytest

import integrations
from calcifer_bot.config import Settings
from calcifer_bot.errors import IntegrationError
from integrations.base import Connectivity, Integration, Reachability
from tests.conftest import ChatBot

created: list[Settings] = []


class Reachable(Integration):
    name, title = "reachable", "Reachable service"

    @classmethod
    def from_settings(cls, settings: Settings) -> Reachable:
        created.append(settings)
        return cls()


class BadAuth(Integration):
    name, title = "badauth", "Service with a wrong token"

    async def check_connectivity(self) -> Connectivity:
        raise IntegrationError("401 from the API: token rejected", permanent=True)


class Hanging(Integration):
    name, title = "hanging", "Service that never answers"

    async def check_connectivity(self) -> Connectivity:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class NeedsExtra(Integration):
    name, title, extra = "charts", "Charts", "charts"
    requires = ("calcifer_module_that_is_not_installed",)


class Unconfigured(Integration):
    name, title = "unconfigured", "Service without credentials"

    @property
    def configured(self) -> bool:
        return False


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    entries = {
        cls.name: f"{__name__}:{cls.__name__}"
        for cls in (Reachable, BadAuth, NeedsExtra, Unconfigured)
    }
    monkeypatch.setattr(integrations, "REGISTRY", entries)
    monkeypatch.setattr(integrations, "_instances", {})
    created.clear()
    return entries


async def test_singletons_are_created_lazily_once_with_the_loaded_settings(
    registry: dict[str, str], bot: ChatBot
) -> None:
    integrations.configure(bot.core.settings)
    assert created == [], "configure() must not create anything"
    first = integrations.reachable  # the `from integrations import x` path
    assert integrations.get("reachable") is first
    assert created == [bot.core.settings]


def test_use_before_configuration_is_a_clear_error(
    registry: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrations, "_settings", None)
    with pytest.raises(RuntimeError, match="before configuration was loaded"):
        integrations.get("reachable")
    with pytest.raises(AttributeError):
        integrations.no_such_integration  # noqa: B018


async def test_check_all_reports_each_state(registry: dict[str, str], bot: ChatBot) -> None:
    results = await integrations.check_all()
    assert {name: r.state for name, r in results.items()} == {
        "reachable": Reachability.OK,
        "badauth": Reachability.CANNOT_CONNECT,
        "charts": Reachability.DISABLED,
        "unconfigured": Reachability.NOT_CONFIGURED,
    }
    assert str(results["charts"]) == "disabled: install calcifer[charts]"
    assert "token rejected" in str(results["badauth"])
    assert bool(results["reachable"]) and not bool(results["badauth"])


async def test_a_hanging_integration_times_out(
    registry: dict[str, str], monkeypatch: pytest.MonkeyPatch, bot: ChatBot
) -> None:
    monkeypatch.setitem(registry, "hanging", f"{__name__}:Hanging")
    result = await integrations.check("hanging", seconds=0.05)
    assert str(result) == "cannot connect: no answer within 0.05 s"


async def test_integrations_command_lists_them(registry: dict[str, str], bot: ChatBot) -> None:
    reply = await bot.say("integrations", user="slack:USOMEONE")
    shown = {f.name: f.value for f in reply.fields}
    assert shown["Reachable service"] == "ok"
    assert shown["Charts"] == "disabled: install calcifer[charts]"
    assert reply.text == "Some need attention.", "badauth is failing"
    assert bot.core.lookup("integrations").slow, "adapters must acknowledge first"


async def test_integrations_not_set_up_are_no_problem(
    registry: dict[str, str], monkeypatch: pytest.MonkeyPatch, bot: ChatBot
) -> None:
    monkeypatch.delitem(registry, "badauth")

    reply = await bot.say("integrations", user="slack:USOMEONE")

    assert reply.text == "Every integration set up is reachable."
    assert {f.name: f.value for f in reply.fields}["Charts"] == "disabled: install calcifer[charts]"


async def test_integrations_command_without_any(
    monkeypatch: pytest.MonkeyPatch, bot: ChatBot
) -> None:
    monkeypatch.setattr(integrations, "REGISTRY", {})
    assert (await bot.say("integrations")).text == "No integrations are installed."
