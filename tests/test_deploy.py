"""What deploy/ ships must work as shipped."""

import re
from pathlib import Path

import pytest

from calcifer_bot.config import load_settings
from calcifer_bot.db import Database
from calcifer_bot.endpoints import definitions_from_config, sync_from_config
from calcifer_bot.roles import Role
from tests.conftest import FakeClock

DEPLOY = Path(__file__).parent.parent / "deploy"
# The secrets the example's notification destinations take from the environment.
SECRETS = {
    "OPS_DISCORD_WEBHOOK": "https://discord.com/api/webhooks/1/token",
    "SMTP_PASSWORD": "example-password",
}


def test_example_configuration_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(DEPLOY / "calcifer.example.toml", environ=SECRETS)
    assert settings.alert_channel == "slack:C0123ALERTS"
    assert "discord-role:987654321098765432" in settings.operators
    assert settings.default_role is Role.VIEWER
    assert settings.origin("http", "port") == "calcifer.example.toml: http.port"
    assert list(settings.notifications.destinations) == ["ops-discord", "oncall-mail"]
    assert set(SECRETS.values()) <= settings.secret_values()


async def test_example_endpoints_sync_into_the_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: Database, clock: FakeClock
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(DEPLOY / "calcifer.example.toml", environ=SECRETS)
    defs = definitions_from_config(settings.endpoints)

    changes = await database.write(lambda s: sync_from_config(s, defs, clock()))

    assert sorted(changes) == ["added nas", "added nightly-backup", "added router"]
    assert settings.monitoring.group_window.total_seconds() == 30


def test_the_slack_manifest_asks_for_what_the_adapter_uses() -> None:
    from adapters.slack_adapter import SLASH_COMMAND

    manifest = (DEPLOY / "slack-app-manifest.yml").read_text()
    scopes = set(re.findall(r"^\s+- ([a-z_:.]+)\s+#", manifest, re.MULTILINE))

    assert f"command: {SLASH_COMMAND}" in manifest
    # One scope per Web API method the adapter calls, and the two event subscriptions.
    needed = {
        "commands",  # the slash command
        "app_mentions:read",  # app_mention
        "chat:write",  # chat.postMessage / update / delete / postEphemeral
        "im:history",  # message.im, conversations.replies in a DM
        "im:write",  # conversations.open
        "users:read",  # users.info
        "users:read.email",  # the e-mail for Git authorship
        "files:write",  # files_upload_v2
        "channels:join",  # conversations.join
        "channels:history",  # conversations.history before a re-post
        "groups:history",
    }
    assert needed <= scopes, needed - scopes
    assert "- app_mention" in manifest and "- message.im" in manifest
    assert "is_enabled: true" in manifest, "interactivity: the buttons"
    assert "socket_mode_enabled: true" in manifest
