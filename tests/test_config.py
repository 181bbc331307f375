"""Configuration: a TOML file overridden by the environment, validated with
one readable line per problem, and secrets that never show up in clear."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calcifer_bot.config import Settings, load_settings
from calcifer_bot.errors import ConfigError
from calcifer_bot.logs import MASK, RedactingFormatter
from calcifer_bot.roles import Role

TOKEN = "xoxb-1111-2222-very-secret"


@pytest.fixture(autouse=True)
def _working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_settings reads ./calcifer.toml when no file is named: keep a stray one out.
    monkeypatch.chdir(tmp_path)


def toml(text: str, name: str = "calcifer.toml") -> Path:
    """Write a configuration file in the (temporary) working directory."""
    path = Path(name)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None = None, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ)
    return info.value.message


# -- where values come from ---------------------------------------------------


def test_defaults_with_an_empty_environment() -> None:
    settings = load_settings(environ={})

    assert settings.database_url == "sqlite:///./data/calcifer.db"
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)
    assert settings.default_role is Role.VIEWER
    assert settings.admins == settings.operators == frozenset()
    assert not settings.slack.enabled and not settings.discord.enabled
    assert settings.origin("http", "port") == "default"
    assert settings.secret_values() == set()


def test_toml_file_values_are_used() -> None:
    path = toml(
        """
        database_url = "sqlite:///ops.db"
        default_role = "operator"
        alert_channel = "slack:C0ALERTS"

        [http]
        host = "0.0.0.0"
        port = 9000

        [discord]
        guilds = [111, 222]
        """
    )
    settings = load_settings(path, environ={})

    assert settings.database_url == "sqlite:///ops.db"
    assert settings.default_role is Role.OPERATOR
    assert settings.alert_channel == "slack:C0ALERTS"
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9000)
    assert settings.discord.guilds == (111, 222)
    assert settings.origin("http", "port") == "calcifer.toml: http.port"


def test_environment_overrides_the_toml_file() -> None:
    path = toml('[http]\nhost = "0.0.0.0"\nport = 9000\n')
    settings = load_settings(path, environ={"CALCIFER_HTTP_PORT": "9100"})

    assert settings.http.port == 9100
    assert settings.origin("http", "port") == "CALCIFER_HTTP_PORT"
    # The rest of the file still applies.
    assert settings.http.host == "0.0.0.0"


def test_calcifer_toml_in_the_working_directory_is_read_when_no_file_is_named() -> None:
    toml("[http]\nport = 9000\n")
    assert load_settings(environ={}).http.port == 9000


def test_calcifer_config_names_the_file(tmp_path: Path) -> None:
    toml("[http]\nport = 1111\n")  # ./calcifer.toml, which must not be read
    named = tmp_path / "etc" / "bot.toml"
    named.parent.mkdir()
    named.write_text("[http]\nport = 2222\n", encoding="utf-8")

    settings = load_settings(environ={"CALCIFER_CONFIG": str(named)})

    assert settings.http.port == 2222
    assert settings.origin("http", "port") == "bot.toml: http.port"


@pytest.mark.parametrize("how", ["argument", "CALCIFER_CONFIG"])
def test_a_missing_named_file_is_an_error_naming_it(how: str) -> None:
    missing = "nowhere/calcifer.toml"
    toml("[http]\nport = 9000\n")  # a readable default must not be used instead
    if how == "argument":
        message = config_error(Path(missing))
    else:
        message = config_error(CALCIFER_CONFIG=missing)
    assert missing in message
    assert "does not exist" in message


@pytest.mark.parametrize(
    ("toml_text", "environ"),
    [
        pytest.param(
            "",
            {
                "CALCIFER_ADMINS": " slack:U1, discord-role:42 ,,",
                "CALCIFER_OPERATORS": "discord:7",
            },
            id="env-comma-lists",
        ),
        pytest.param(
            'admins = ["slack:U1", "discord-role:42"]\noperators = ["discord:7"]\n',
            {},
            id="toml-arrays",
        ),
    ],
)
def test_admins_and_operators_lists(toml_text: str, environ: dict[str, str]) -> None:
    settings = load_settings(toml(toml_text), environ=environ)

    assert settings.admins == {"slack:U1", "discord-role:42"}
    assert settings.operators == {"discord:7"}


# -- *_FILE variants ----------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "content", "read"),
    [
        ("SLACK_BOT_TOKEN", f"{TOKEN}\n", lambda s: s.slack.bot_token.get_secret_value()),
        ("DISCORD_BOT_TOKEN", f"{TOKEN}\r\n", lambda s: s.discord.bot_token.get_secret_value()),
        ("CALCIFER_HTTP_PORT", "9000\n", lambda s: s.http.port),
    ],
    ids=["slack-token", "discord-token-crlf", "http-port"],
)
def test_file_variant_reads_the_value_from_a_file(
    tmp_path: Path, var: str, content: str, read: Callable[[Settings], Any]
) -> None:
    secret_file = tmp_path / "credential"
    secret_file.write_text(content, encoding="utf-8")

    settings = load_settings(environ={f"{var}_FILE": str(secret_file)})

    assert str(read(settings)) == content.rstrip()


def test_setting_both_a_variable_and_its_file_variant_is_an_error(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(TOKEN, encoding="utf-8")

    message = config_error(SLACK_BOT_TOKEN=TOKEN, SLACK_BOT_TOKEN_FILE=str(secret_file))

    assert "SLACK_BOT_TOKEN_FILE" in message
    assert "not both" in message
    assert TOKEN not in message


@pytest.mark.parametrize("target", ["missing-file", "a-directory"])
def test_an_unreadable_file_is_an_error_naming_the_variable(tmp_path: Path, target: str) -> None:
    (tmp_path / "a-directory").mkdir()

    message = config_error(SLACK_SIGNING_SECRET_FILE=str(tmp_path / target))

    assert message.startswith("SLACK_SIGNING_SECRET_FILE: cannot read")
    assert target in message


# -- ${ENV_VAR} interpolation --------------------------------------------------


def test_toml_strings_interpolate_environment_variables() -> None:
    path = toml(
        """
        admins = ["${ADMIN}"]

        [slack]
        bot_token = "${SLACK_TOKEN}"
        api_url = "http://${SLACK_HOST}:3000/api/"
        """
    )
    environ = {"ADMIN": "slack:UBOSS", "SLACK_TOKEN": TOKEN, "SLACK_HOST": "127.0.0.9"}

    settings = load_settings(path, environ=environ)

    assert settings.admins == {"slack:UBOSS"}
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == TOKEN
    assert settings.slack.api_url == "http://127.0.0.9:3000/api/"
    # Whatever was interpolated may be a secret: all of it is redacted downstream.
    assert set(environ.values()) <= settings.secret_values()


def test_a_missing_interpolation_variable_is_an_error_naming_key_and_variable() -> None:
    path = toml('[discord]\nbot_token = "${DISCORD_TOKEN}"\n')

    message = config_error(path)

    assert message == (
        "calcifer.toml: discord.bot_token: environment variable DISCORD_TOKEN is not set"
    )


# -- invalid values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml_text", "environ", "where", "what"),
    [
        ("", {"CALCIFER_HTTP_PORT": "eighty"}, "CALCIFER_HTTP_PORT", "valid integer"),
        ("", {"CALCIFER_HTTP_PORT": "70000"}, "CALCIFER_HTTP_PORT", "less than or equal to 65535"),
        ("[http]\nport = 70000\n", {}, "calcifer.toml: http.port", "less than or equal to 65535"),
        ("", {"CALCIFER_ADMINS": "slack:U1,U123"}, "CALCIFER_ADMINS", "'U123' is not a platform"),
        ("", {"CALCIFER_DEFAULT_ROLE": "god"}, "CALCIFER_DEFAULT_ROLE", "got 'god'"),
        ("", {"CALCIFER_DATABASE_URL": "no url"}, "CALCIFER_DATABASE_URL", "SQLAlchemy URL"),
        ("", {"CALCIFER_SLACK_API_URL": "ftp://x"}, "CALCIFER_SLACK_API_URL", "http or https"),
        ("", {"SLACK_APP_TOKEN": TOKEN}, "SLACK_APP_TOKEN", "app-level token starting with xapp-"),
        ("", {"SLACK_BOT_TOKEN": "xapp-1-A"}, "SLACK_BOT_TOKEN", "bot token starting with xoxb-"),
        (
            "",
            {"CALCIFER_DISCORD_GATEWAY_URL": "http://127.0.0.1:1/gw"},
            "CALCIFER_DISCORD_GATEWAY_URL",
            "ws or wss",
        ),
        ("", {"CALCIFER_ALERT_CHANNEL": "C123"}, "CALCIFER_ALERT_CHANNEL", "slack:CHANNEL_ID"),
        ('databse_url = "sqlite://"\n', {}, "calcifer.toml: databse_url", "unknown setting"),
        ("[http]\nprot = 80\n", {}, "calcifer.toml: http.prot", "unknown setting"),
        ("[http\nport = 80\n", {}, "calcifer.toml", "not valid TOML"),
    ],
    ids=[
        "port-not-a-number",
        "port-too-big",
        "port-too-big-in-toml",
        "identity-without-platform",
        "unknown-role",
        "bad-database-url",
        "slack-api-url-scheme",
        "slack-bot-token-as-app-token",
        "slack-app-token-as-bot-token",
        "discord-gateway-url-scheme",
        "alert-channel-without-platform",
        "typo-top-level-key",
        "typo-section-key",
        "invalid-toml",
    ],
)
def test_an_invalid_value_is_one_line_naming_its_origin_and_the_problem(
    toml_text: str, environ: dict[str, str], where: str, what: str
) -> None:
    message = config_error(toml(toml_text), **environ)

    [line] = message.splitlines()
    assert line.startswith(f"{where}: ")
    assert what in line


def test_every_problem_gets_its_own_line() -> None:
    path = toml('alert_channel = "general"\n[http]\nport = 9000\n')

    message = config_error(path, CALCIFER_HTTP_PORT="eighty", CALCIFER_DEFAULT_ROLE="god")

    origins = sorted(line.split(": ")[0] for line in message.splitlines())
    assert origins == ["CALCIFER_DEFAULT_ROLE", "CALCIFER_HTTP_PORT", "calcifer.toml"]
    assert "calcifer.toml: alert_channel: " in message


@pytest.mark.parametrize(
    ("toml_text", "environ", "secret", "where"),
    [
        ("[slack]\nbot_token = 123456789\n", {}, "123456789", "slack.bot_token"),
        (f'[slack]\napp_token = ["{TOKEN}"]\n', {}, TOKEN, "slack.app_token"),
        (f'[discord]\nbot_token = {{ value = "{TOKEN}" }}\n', {}, TOKEN, "discord.bot_token"),
        # An interpolated value is a secret even in a field that is not one.
        ('[slack]\napi_url = "${HOOK}"\n', {"HOOK": TOKEN}, TOKEN, "slack.api_url"),
        ('[http]\nport = "${PORT}"\n', {"PORT": TOKEN}, TOKEN, "http.port"),
        # A database URL carries its password; a bad port must not echo it.
        (
            "",
            {"CALCIFER_DATABASE_URL": "postgresql://calcifer:hunter2-pw@db:port/calcifer"},
            "hunter2-pw",
            "CALCIFER_DATABASE_URL",
        ),
    ],
    ids=[
        "token-wrong-type",
        "token-in-a-list",
        "token-in-a-table",
        "interpolated-into-url",
        "interpolated-into-port",
        "database-password",
    ],
)
def test_secrets_are_never_echoed_in_errors(
    toml_text: str, environ: dict[str, str], secret: str, where: str
) -> None:
    message = config_error(toml(toml_text), **environ)

    assert where in message
    assert secret not in message


# -- secrets in force ----------------------------------------------------------


def test_secrets_are_masked_in_repr_str_and_describe() -> None:
    environ = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": "signing-secret-value",
        "DISCORD_BOT_TOKEN": "discord-token-value",
    }
    settings = load_settings(environ=environ)

    for text in (repr(settings), str(settings)):
        for secret in environ.values():
            assert secret not in text
    shown = {key: value for key, value, _origin in settings.describe()}
    assert shown["slack.bot_token"] == "set (hidden)"
    assert shown["slack.signing_secret"] == "set (hidden)"
    assert shown["discord.bot_token"] == "set (hidden)"
    assert shown["slack.app_token"] == "not set"
    assert settings.secret_values() == set(environ.values())


def test_the_database_password_is_a_secret() -> None:
    url = "postgresql://calcifer:s3cret-pw@127.0.0.1:5432/calcifer"
    settings = load_settings(environ={"CALCIFER_DATABASE_URL": url})
    assert settings.secret_values() == {"s3cret-pw"}
    shown = dict((key, value) for key, value, _ in settings.describe())
    assert shown["database_url"] == "postgresql://calcifer:***@127.0.0.1:5432/calcifer"
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings)
    assert settings.database_url == url, "the real value is still there for the engine"


# -- log redaction -------------------------------------------------------------


@pytest.fixture
def log() -> tuple[logging.Logger, io.StringIO]:
    settings = load_settings(
        environ={"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": f"{TOKEN}-and-more"}
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s", settings.secret_values()))
    logger = logging.Logger("calcifer.test_config")  # not registered: no global state
    logger.addHandler(handler)
    return logger, stream


def test_log_messages_are_redacted(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log

    logger.warning("connecting with %s, then %s-and-more", TOKEN, TOKEN)

    # The longer secret is masked whole, not as the shorter one plus a tail.
    assert stream.getvalue() == f"WARNING connecting with {MASK}, then {MASK}\n"


def test_tracebacks_in_logs_are_redacted(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log

    try:
        raise RuntimeError(f"Slack refused token {TOKEN}")
    except RuntimeError:
        logger.exception("connect failed")

    output = stream.getvalue()
    assert "Traceback (most recent call last)" in output
    assert f"RuntimeError: Slack refused token {MASK}" in output
    assert TOKEN not in output
