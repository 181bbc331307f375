"""What deploy/ ships must work as shipped."""

from pathlib import Path

import pytest

from calcifer_bot.config import load_settings
from calcifer_bot.roles import Role

DEPLOY = Path(__file__).parent.parent / "deploy"


def test_example_configuration_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(DEPLOY / "calcifer.example.toml", environ={})
    assert settings.alert_channel == "slack:C0123ALERTS"
    assert "discord-role:987654321098765432" in settings.operators
    assert settings.default_role is Role.VIEWER
    assert settings.origin("http", "port") == "calcifer.example.toml: http.port"
