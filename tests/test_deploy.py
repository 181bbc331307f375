"""What deploy/ ships must work as shipped."""

from pathlib import Path

import pytest

from calcifer_bot.config import load_settings
from calcifer_bot.db import Database
from calcifer_bot.endpoints import definitions_from_config, sync_from_config
from calcifer_bot.roles import Role
from tests.conftest import FakeClock

DEPLOY = Path(__file__).parent.parent / "deploy"


def test_example_configuration_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(DEPLOY / "calcifer.example.toml", environ={})
    assert settings.alert_channel == "slack:C0123ALERTS"
    assert "discord-role:987654321098765432" in settings.operators
    assert settings.default_role is Role.VIEWER
    assert settings.origin("http", "port") == "calcifer.example.toml: http.port"


async def test_example_endpoints_sync_into_the_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: Database, clock: FakeClock
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(DEPLOY / "calcifer.example.toml", environ={})
    defs = definitions_from_config(settings.endpoints)

    changes = await database.write(lambda s: sync_from_config(s, defs, clock()))

    assert sorted(changes) == ["added nas", "added nightly-backup", "added router"]
    assert settings.monitoring.group_window.total_seconds() == 30
