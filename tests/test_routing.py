"""Routing rules and the [notifications] configuration: what goes where, and what is refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from calcifer_bot.config import Rate, Settings, load_settings
from calcifer_bot.errors import ConfigError
from calcifer_bot.routing import Labels, Routes

HOOK = "http://127.0.0.1:9/hooks/abc/SECRETTOKEN"

CONFIG = f"""
[notifications]
default = ["catch-all"]

[notifications.destinations.ops-discord]
type = "discord-webhook"
url = "{HOOK}"

[notifications.destinations.oncall-mail]
type = "email"
to = ["oncall@example.org"]
smtp_host = "127.0.0.1"
password = "hunter2-mail"
username = "calcifer"

[notifications.destinations.catch-all]
type = "webhook"
url = "http://127.0.0.1:9/all"
rate = "off"

[notifications.destinations.lab-chat]
type = "slack"
channel = "C0LAB"

[[notifications.routes]]
match = {{ service = "nas" }}
to = ["ops-discord", "oncall-mail"]

[[notifications.routes]]
match = {{ severity = "critical", tag = ["prod", "edge-*"] }}
to = "oncall-mail"

[[notifications.routes]]
match = {{ endpoint = "lab-*" }}
to = ["lab-chat"]
"""


def settings_from(tmp_path: Path, text: str, **env: str) -> Settings:
    path = tmp_path / "calcifer.toml"
    path.write_text(text)
    return load_settings(path, environ={"SLACK_BOT_TOKEN": "xoxb-test", **env})


@pytest.fixture
def routes(tmp_path: Path) -> Routes:
    return Routes.from_settings(settings_from(tmp_path, CONFIG).notifications)


def test_every_matching_route_adds_its_destinations_once_in_order(routes: Routes) -> None:
    nas = Labels("alert", endpoint="nas-web", service="nas", tags=("prod",), severity="critical")
    assert routes.names_for(nas) == ["ops-discord", "oncall-mail"]
    assert routes.destinations(nas) == ["notify:ops-discord", "notify:oncall-mail"]


def test_all_keys_of_a_match_must_fit_and_any_value_of_a_key_may(routes: Routes) -> None:
    edge = Labels("alert", endpoint="router", tags=("edge-2",), severity="critical")
    assert routes.names_for(edge) == ["oncall-mail"]
    # The same tag, but only a warning: the second rule needs both.
    assert routes.names_for(Labels("alert", tags=("edge-2",), severity="warning")) == ["catch-all"]


def test_the_default_takes_what_no_route_matches(routes: Routes) -> None:
    assert routes.names_for(Labels("alert", endpoint="printer")) == ["catch-all"]


def test_a_chat_destination_is_its_channel_through_the_bot(routes: Routes) -> None:
    assert routes.destinations(Labels("alert", endpoint="lab-pi")) == ["slack:C0LAB"]


def test_discord_webhooks_and_chat_channels_can_edit_and_mail_cannot(routes: Routes) -> None:
    assert routes.editable == {"notify:ops-discord", "notify:catch-all", "slack:C0LAB"}


def test_patterns_are_case_sensitive_globs(routes: Routes) -> None:
    assert routes.names_for(Labels("alert", endpoint="LAB-pi")) == ["catch-all"]


def test_no_configuration_routes_nothing() -> None:
    assert Routes().destinations(Labels("alert", endpoint="x")) == []


def test_rates_are_read_and_off_means_no_limit(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        CONFIG.replace('type = "discord-webhook"', 'type = "discord-webhook"\nrate = "5/10s"'),
    )
    dests = settings.notifications.destinations
    assert dests["ops-discord"].rate == Rate(5, timedelta(seconds=10))
    assert dests["catch-all"].rate == "off"
    assert dests["oncall-mail"].rate is None  # the provider's own default applies


def test_webhook_urls_and_passwords_count_as_secrets(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    assert {HOOK, "hunter2-mail"} <= settings.secret_values()
    shown = "\n".join(f"{k} {v}" for k, v, _ in settings.describe())
    assert "ops-discord, oncall-mail, catch-all, lab-chat" in shown
    assert "SECRETTOKEN" not in shown and "hunter2" not in shown


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('match = { service = "nas" }', 'match = { servce = "nas" }'),
            "notifications.routes.0.match: cannot match on 'servce'",
        ),
        (
            ('severity = "critical"', 'severity = "urgent"'),
            "severity 'urgent': expected critical, warning, info",
        ),
        (
            ('to = "oncall-mail"', 'to = "on-call-mail"'),
            "routes.1.to: no destination named 'on-call-mail'",
        ),
        (('default = ["catch-all"]', 'default = ["nowhere"]'), "no destination named 'nowhere'"),
        (
            ('type = "webhook"', 'type = "pagerduty"'),
            "notifications.destinations.catch-all: unknown type 'pagerduty'",
        ),
        (('channel = "C0LAB"', ""), "type slack needs channel"),
        (('rate = "off"', 'rate = "lots"'), "expected COUNT/DURATION such as 30/1m"),
        (('rate = "off"', 'rate = "0/1m"'), "expected COUNT/DURATION"),
        (
            ('smtp_host = "127.0.0.1"', 'smtp_host = "127.0.0.1"\nsmtp_port = "many"'),
            "notifications.destinations.oncall-mail: smtp_port:",
        ),
        (
            ('url = "http://127.0.0.1:9/all"', 'url = "http://127.0.0.1:9/all"\ncolour = 1'),
            "unknown setting 'colour'",
        ),
    ],
)
def test_a_bad_notification_setting_stops_start_up_naming_it(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in CONFIG
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, CONFIG.replace(old, new, 1))
    message = caught.value.message
    assert expected in message
    assert message.startswith("calcifer.toml: notifications")
    # Destinations hold webhook tokens and passwords: their tables are never echoed.
    assert "SECRETTOKEN" not in message and "hunter2" not in message


def test_a_chat_destination_needs_its_bot(tmp_path: Path) -> None:
    path = tmp_path / "calcifer.toml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match="lab-chat: type slack posts through the bot"):
        load_settings(path, environ={})


def test_secrets_from_the_environment_fill_in_destinations(tmp_path: Path) -> None:
    text = CONFIG.replace(f'url = "{HOOK}"', 'url = "${DISCORD_HOOK}"')
    settings = settings_from(tmp_path, text, DISCORD_HOOK="http://127.0.0.1:9/from-env")
    dest = settings.notifications.destinations["ops-discord"]
    assert dest.provider_config().url.get_secret_value() == "http://127.0.0.1:9/from-env"
    assert "http://127.0.0.1:9/from-env" in settings.secret_values()
    with pytest.raises(ConfigError, match="environment variable DISCORD_HOOK is not set"):
        settings_from(tmp_path, text)
