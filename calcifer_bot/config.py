"""Configuration: a TOML file overridden by environment variables, validated once.

Every environment variable Calcifer reads is listed in :data:`ENV_VARS`; each
also has a ``NAME_FILE`` twin that reads the value from a file (Docker and
systemd credentials). An invalid value stops start-up with a line that names
where the value came from and what is wrong.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from calcifer_bot.errors import ConfigError
from calcifer_bot.logs import redact
from calcifer_bot.parser import counted, format_duration, parse_duration
from calcifer_bot.roles import Role, check_identity

DEFAULT_CONFIG_FILE = "calcifer.toml"

# Environment variable -> key path in the settings model.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "CALCIFER_DATABASE_URL": ("database_url",),
    "CALCIFER_HTTP_HOST": ("http", "host"),
    "CALCIFER_HTTP_PORT": ("http", "port"),
    "CALCIFER_PUBLIC_URL": ("http", "public_url"),
    "CALCIFER_GIT_REPO": ("git_repo",),
    "CALCIFER_ADMINS": ("admins",),
    "CALCIFER_OPERATORS": ("operators",),
    "CALCIFER_DEFAULT_ROLE": ("default_role",),
    "CALCIFER_ALERT_CHANNEL": ("alert_channel",),
    "CALCIFER_WORK_CHANNEL": ("work_channel",),
    "CALCIFER_LOG_LEVEL": ("log_level",),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "CALCIFER_SLACK_API_URL": ("slack", "api_url"),
    "DISCORD_BOT_TOKEN": ("discord", "bot_token"),
    "CALCIFER_DISCORD_API_URL": ("discord", "api_url"),
    "CALCIFER_DISCORD_GATEWAY_URL": ("discord", "gateway_url"),
    "CALCIFER_DISCORD_GUILDS": ("discord", "guilds"),
    "CALCIFER_DISCORD_MESSAGE_CONTENT": ("discord", "message_content"),
}

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _identities(value: Any) -> Any:
    value = _comma_list(value)
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(check_identity(str(item)) for item in value)
    return value


def _role(value: Any) -> Any:
    return Role.parse(value) if isinstance(value, str) else value


def _url(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"expected a {' or '.join(schemes)} URL, got {value!r}")
    return value


Identities = Annotated[frozenset[str], BeforeValidator(_identities)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0 picks a free port (tests)
    # How others reach this server (push URLs); behind a reverse proxy it differs.
    public_url: str | None = None

    _check_public = field_validator("public_url")(lambda v: _url(v, ("http", "https")))

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def _duration(value: Any) -> Any:
    """TOML durations are strings like "10s" or "48h"; plain numbers are seconds."""
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class GitSettings(_Section):
    """``[git]``: the repositories Calcifer keeps honest, and who commits."""

    # service -> repository; everything else uses CALCIFER_GIT_REPO (``git_repo``).
    repositories: dict[str, Path] = Field(default_factory=dict)
    # chat identity ("slack:U1") -> "Name <email>", the author of their commits.
    authors: dict[str, str] = Field(default_factory=dict)
    committer_name: str = "Calcifer"
    committer_email: str = "calcifer@localhost"
    # How CHANGES.md is written: Keep a Changelog, or the seed's "## 2025-11-25 - Name - Type".
    changelog: Literal["keep-a-changelog", "dated"] = "keep-a-changelog"
    default_target: str = "main"  # what branches merge into

    @field_validator("authors")
    @classmethod
    def _check_authors(cls, value: dict[str, str]) -> dict[str, str]:
        for identity, author in value.items():
            check_identity(identity)
            if not re.fullmatch(r"[^<>]+ <[^<>@\s]+@[^<>\s]+>", author.strip()):
                raise ValueError(f"{identity}: expected 'Name <email>', got {author!r}")
        return value


class MonitoringSettings(_Section):
    """``[monitoring]``: how the engine checks, groups, reminds and keeps history."""

    retry_interval: Duration = timedelta(seconds=10)  # re-check while a state change is pending
    group_window: Duration = timedelta(seconds=30)  # downs this close share one message
    raw_retention: Duration = timedelta(hours=48)  # raw results, then 5-minute rollups
    # 5-minute rollups: 26,000 rows per endpoint at 90 days; a year for 10,000
    # endpoints would be a billion rows.
    rollup_retention: Duration = timedelta(days=90)
    reminder: Duration | None = None  # remind while down; off by default
    flap_high: float = Field(default=50.0, gt=0, le=100)  # % state change that starts flapping
    flap_low: float = Field(default=25.0, gt=0, le=100)  # … and that ends it
    concurrency: int = Field(default=500, ge=1, le=20000)
    ca_file: Path | None = None  # a homelab CA, trusted besides the system's

    @field_validator("reminder")
    @classmethod
    def _check_reminder(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(minutes=5):
            raise ValueError("reminders are at least 5 minutes apart")
        return value

    @field_validator("retry_interval", "group_window", "raw_retention", "rollup_retention")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("expected a duration above zero")
        return value


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` messages per ``per``: a destination's own limit."""

    count: int
    per: timedelta

    def __str__(self) -> str:
        return f"{self.count}/{format_duration(self.per)}"


def parse_rate(value: str) -> Rate | Literal["off"]:
    """``30/1m`` (30 a minute), ``1/2s``, or ``off``."""
    if value.strip().lower() == "off":
        return "off"
    count, sep, per = value.partition("/")
    try:
        rate = Rate(int(count), parse_duration(per.strip() or "x"))
    except ValueError:
        rate = None
    if not sep or rate is None or rate.count < 1:
        raise ValueError(f"expected COUNT/DURATION such as 30/1m, or off; got {value!r}")
    return rate


def _rate(value: Any) -> Any:
    return parse_rate(value) if isinstance(value, str) else value


CHAT_DESTINATIONS = ("slack", "discord")  # through the bot, not a webhook
_DESTINATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MATCH_KEYS = ("endpoint", "service", "group", "tag", "severity", "event")
SEVERITIES = ("critical", "warning", "info")  # an endpoint's, for routing


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class DestinationSettings(BaseModel):
    """``[notifications.destinations.NAME]``: type and rate here; the provider checks the rest."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    # None: the service's own limit (the provider's default); "off": no limit.
    rate: Annotated[Rate | Literal["off"] | None, BeforeValidator(_rate)] = None
    channel: str | None = None  # for type slack and discord: a channel id

    @model_validator(mode="after")
    def _check(self) -> DestinationSettings:
        from integrations.notify import PROVIDERS, provider_class

        extra = dict(self.model_extra or {})
        if self.type in CHAT_DESTINATIONS:
            if not self.channel:
                raise ValueError(f"type {self.type} needs channel = the channel's id")
            if extra:
                raise ValueError(f"unknown setting {sorted(extra)[0]!r} for type {self.type}")
            return self
        if self.type not in PROVIDERS:
            known = ", ".join([*PROVIDERS, *CHAT_DESTINATIONS])
            raise ValueError(f"unknown type {self.type!r}; expected one of {known}")
        if self.channel is not None:
            raise ValueError(f"channel is for types slack and discord, not {self.type}")
        try:
            provider_class(self.type).Config.model_validate(extra)
        except ValidationError as exc:
            raise ValueError(_first_problem(exc)) from None
        return self

    def provider_config(self) -> Any:
        """The provider's own settings, validated (they were at load, so this cannot fail)."""
        from integrations.notify import provider_class

        return provider_class(self.type).Config.model_validate(dict(self.model_extra or {}))


def _first_problem(exc: ValidationError) -> str:
    """A provider's complaint in one line, without the value: it may be a secret."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if err["type"] == "extra_forbidden":
        return f"unknown setting {where!r}"
    return f"{where}: {message}" if where else message


class RouteSettings(_Section):
    """``[[notifications.routes]]``: what matches goes to every destination in ``to``."""

    # key -> glob patterns; a message matches when every key has a matching value.
    match: dict[str, Annotated[tuple[str, ...], BeforeValidator(_names)]] = Field(
        default_factory=dict
    )
    to: Annotated[tuple[str, ...], BeforeValidator(_names)]

    @field_validator("match")
    @classmethod
    def _check_match(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for key, patterns in value.items():
            if key not in MATCH_KEYS:
                raise ValueError(f"cannot match on {key!r}; expected {', '.join(MATCH_KEYS)}")
            if not patterns:
                raise ValueError(f"{key}: give at least one value")
            if key == "severity":
                for p in patterns:
                    if p not in SEVERITIES:
                        raise ValueError(f"severity {p!r}: expected {', '.join(SEVERITIES)}")
        return value

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one destination")
        return value


class NotificationSettings(_Section):
    """``[notifications]``: named destinations, the routes to them, and a default."""

    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    routes: tuple[RouteSettings, ...] = ()
    # Where a message goes when no route matches (besides its chat channel).
    default: Annotated[tuple[str, ...], BeforeValidator(_names)] = ()

    @field_validator("destinations")
    @classmethod
    def _check_names(cls, value: dict[str, DestinationSettings]) -> dict[str, DestinationSettings]:
        for name in value:
            if not _DESTINATION_NAME.fullmatch(name):
                raise ValueError(
                    f"destination name {name!r}: letters, digits, '.', '-' and '_' only"
                )
        return value

    @model_validator(mode="after")
    def _check_references(self) -> NotificationSettings:
        named = [("default", n) for n in self.default]
        named += [(f"routes.{i}.to", n) for i, r in enumerate(self.routes) for n in r.to]
        for where, name in named:
            if name not in self.destinations:
                known = ", ".join(self.destinations) or "none are configured"
                raise ValueError(f"{where}: no destination named {name!r} ({known})")
        return self


class SlackSettings(_Section):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str | None = None

    _check_url = field_validator("api_url")(lambda v: _url(v, ("http", "https")))

    @field_validator("bot_token", "app_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # Pasting the app token for the bot token (or a user token) is the usual mistake.
        prefix = {"bot_token": "xoxb-", "app_token": "xapp-"}[info.field_name or ""]
        if value is not None and not value.get_secret_value().startswith(prefix):
            kind = "a bot token" if prefix == "xoxb-" else "an app-level token"
            raise ValueError(f"expected {kind} starting with {prefix}")
        return value

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None


class DiscordSettings(_Section):
    bot_token: SecretStr | None = None
    api_url: str | None = None
    gateway_url: str | None = None
    guilds: Annotated[tuple[int, ...], BeforeValidator(_comma_list)] = ()
    # The privileged Message Content intent, for the `!calcifer` prefix: it must
    # also be switched on for the bot in the Developer Portal.
    message_content: bool = False

    _check_api = field_validator("api_url")(lambda v: _url(v, ("http", "https")))
    _check_gateway = field_validator("gateway_url")(lambda v: _url(v, ("ws", "wss")))

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None


class Settings(_Section):
    database_url: str = "sqlite:///./data/calcifer.db"
    http: HttpSettings = HttpSettings()
    git_repo: Path = Path(".")
    admins: Identities = frozenset()
    operators: Identities = frozenset()
    default_role: Annotated[Role, BeforeValidator(_role)] = Role.VIEWER
    alert_channel: str | None = None
    work_channel: str | None = None  # where finished work items are announced; else alerts'
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    slack: SlackSettings = SlackSettings()
    discord: DiscordSettings = DiscordSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    git: GitSettings = GitSettings()
    # Validated by the monitoring and notification integrations that own them.
    endpoints: tuple[dict[str, Any], ...] = ()
    notifications: NotificationSettings = NotificationSettings()

    _origins: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)
    _interpolated: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            make_url(value)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ValueError(f"expected an SQLAlchemy URL such as {DEFAULT_DB}") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("alert_channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        if value is None:
            return None
        platform, sep, channel = value.partition(":")
        if not sep or not channel or platform not in ("slack", "discord", "console"):
            raise ValueError(f"expected slack:CHANNEL_ID or discord:CHANNEL_ID, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_chat_destinations(self) -> Settings:
        tokens = {"slack": "SLACK_BOT_TOKEN", "discord": "DISCORD_BOT_TOKEN"}
        for name, dest in self.notifications.destinations.items():
            platform = getattr(self, dest.type, None) if dest.type in CHAT_DESTINATIONS else None
            if platform is not None and not platform.enabled:
                raise ValueError(
                    f"notifications.destinations.{name}: type {dest.type} posts through "
                    f"the bot, and {tokens[dest.type]} is not set"
                )
        return self

    def origin(self, *key: str) -> str:
        """Where a value came from: an environment variable, the file, or the default."""
        return self._origins.get(key, "default")

    def secret_values(self) -> set[str]:
        """Every secret in force, for redaction in logs and replies."""
        found = set(self._interpolated)
        password = make_url(self.database_url).password
        if password:
            found.add(str(password))
        sections: list[Any] = [self.slack, self.discord]
        sections += [
            d.provider_config()
            for d in self.notifications.destinations.values()
            if d.type not in CHAT_DESTINATIONS
        ]
        for section in sections:
            for value in section.__dict__.values():
                for item in value.values() if isinstance(value, dict) else [value]:
                    if isinstance(item, SecretStr) and item.get_secret_value():
                        found.add(item.get_secret_value())
        return found

    def describe(self) -> Iterator[tuple[str, str, str]]:
        """(key, shown value, origin) for every scalar setting; secrets masked."""
        for name, value in self.__dict__.items():
            if name == "endpoints":
                yield name, f"{len(value)} entries", self.origin(name)
            elif name == "notifications":
                names = ", ".join(value.destinations) or "none"
                yield f"{name}.destinations", names, self.origin(name, "destinations")
                routes = counted(len(value.routes), "route")
                yield f"{name}.routes", routes, self.origin(name, "routes")
                yield f"{name}.default", _show(value.default), self.origin(name, "default")
            elif isinstance(value, _Section):
                for sub, subvalue in value.__dict__.items():
                    yield f"{name}.{sub}", _show(subvalue), self.origin(name, sub)
            elif name == "database_url":
                yield name, self.database_url_shown(), self.origin(name)
            else:
                yield name, _show(value), self.origin(name)

    def database_url_shown(self) -> str:
        return make_url(self.database_url).render_as_string(hide_password=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, self.database_url_shown() if name == "database_url" else value


DEFAULT_DB = Settings.model_fields["database_url"].default


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "set (hidden)"
    if value is None:
        return "not set"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, frozenset | tuple):
        return ", ".join(str(v) for v in sorted(value, key=str)) or "none"
    return str(value)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError if invalid."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    interpolated: set[str] = set()

    file = _config_path(path, environ)
    if file is not None:
        data = _read_toml(file)
        for key in _keys(data):
            origins[key] = f"{file.name}: {'.'.join(key)}"
        data = _interpolate(data, environ, file.name, (), interpolated)

    for var, key in ENV_VARS.items():
        value = _env(environ, var)
        if value is not None:
            _set(data, key, value)
            origins[key] = var

    secrets = {v for v in interpolated if v}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        lines = (_explain(err, origins, secrets) for err in exc.errors())
        raise ConfigError("\n".join(lines)) from None
    settings._origins = origins
    settings._interpolated = frozenset(secrets)
    return settings


def _config_path(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    named = path or environ.get("CALCIFER_CONFIG")
    if named:
        file = Path(named)
        if not file.is_file():
            raise ConfigError(f"configuration file {file} does not exist")
        return file
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file.name}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from None


def _env(environ: Mapping[str, str], var: str) -> str | None:
    value, file = environ.get(var), environ.get(f"{var}_FILE")
    if value is not None and file is not None:
        raise ConfigError(f"{var}: set {var} or {var}_FILE, not both")
    if file is None:
        return value
    try:
        return Path(file).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{var}_FILE: cannot read {file}: {exc.strerror}") from None


def _interpolate(
    node: Any, environ: Mapping[str, str], filename: str, key: tuple[str, ...], found: set[str]
) -> Any:
    """Replace ``${VAR}`` in string values; the substituted values count as secrets."""
    if isinstance(node, dict):
        return {k: _interpolate(v, environ, filename, (*key, k), found) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, environ, filename, key, found) for v in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(
                f"{filename}: {'.'.join(key)}: environment variable {name} is not set"
            )
        found.add(environ[name])
        return environ[name]

    return _INTERPOLATION.sub(substitute, node)


def _keys(node: Any, key: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path in a TOML document, tables included."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*key, k)
            yield from _keys(v, (*key, k))


def _set(data: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    for part in key[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[key[-1]] = value


def _explain(err: Any, origins: dict[tuple[str, ...], str], secrets: set[str]) -> str:
    loc = tuple(str(part) for part in err["loc"])
    found = next((n for n in range(len(loc), 0, -1) if loc[:n] in origins), 0)
    if not found:
        where = ".".join(loc) or "configuration"
    else:
        where = origins[loc[:found]]
        if where.endswith(".".join(loc[:found])):  # from the file: name the rest of the path too
            where = ".".join([where, *loc[found:]])
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown setting {'.'.join(loc)!r}"
    message = str(err["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    # Tokens, a database URL (it may hold a password) and ${VAR} values are never echoed.
    hidden = sorted((s for s in secrets if s in str(err["input"])), key=len, reverse=True)
    secret = (
        bool(hidden)
        or loc[:1] == ("database_url",)
        or loc[:1] == ("notifications",)  # webhook URLs and passwords
        or any(part in ("bot_token", "signing_secret", "app_token") for part in loc)
    )
    shown = repr(err["input"])
    if shown not in message and "got " not in message and not secret and err["type"] != "missing":
        message += f" (got {shown})"
    return redact(f"{where}: {message}", hidden)
