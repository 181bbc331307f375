"""Any service Apprise knows (ntfy, Gotify, Telegram, Teams, Matrix…), by one URL.

Apprise is optional (``calcifer[notify]``) and synchronous: it is imported
inside methods only, and each send runs in Calcifer's worker threads. Its
``async_notify`` would not help: in Apprise 2.3 it hands every plugin's
blocking ``send()`` (``requests``) to a thread pool of Apprise's own, so it is
threads either way, and this way the one rule holds: blocking calls leave the
event loop through :func:`calcifer_bot.aio.blocking`.

The URL is the credential (tokens, passwords): it never appears in an error,
a log line or ``describe``; only its scheme and the service's name do.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pydantic import ConfigDict, SecretStr, field_validator

from calcifer_bot.aio import blocking
from calcifer_bot.errors import ConfigError, IntegrationError
from calcifer_bot.http import tidy
from calcifer_bot.logs import MASK, redact
from calcifer_bot.parser import format_duration
from calcifer_bot.reply import Reply, Status
from integrations.base import Connectivity, Reachability
from integrations.notify.base import Message, Provider, ProviderConfig, Timeout

if TYPE_CHECKING:
    import apprise

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://.")

# Calcifer's status -> Apprise's notify type (its value, so apprise need not be imported).
NOTIFY_TYPES: dict[Status, str] = {
    Status.ERROR: "failure",
    Status.WARNING: "warning",
    Status.OK: "success",
    Status.INFO: "info",
}


def markdown_body(reply: Reply) -> str:
    """The body Apprise gets: the title travels apart, as every service has its own place."""
    parts = [reply.text] if reply.text else []
    if reply.fields:
        parts.append("\n".join(f"**{f.name}:** {f.value}" for f in reply.fields))
    commands = [b.command for b in reply.buttons if b.command]
    if commands:  # no buttons outside chat: say what they would have run
        parts.append("In chat: " + " · ".join(f"`{c}`" for c in commands))
    if reply.footer:
        parts.append(f"_{reply.footer}_")
    return "\n\n".join(parts)


class AppriseURL(Provider):
    """One Apprise URL per destination; Apprise's own plugin does the talking."""

    type = "apprise"
    title = "Apprise"
    edits = False
    default_rate = "30/1m"
    requires = ("apprise",)
    extra = "notify"

    class Config(ProviderConfig):
        """``type = "apprise"``: ``url = "ntfy://ntfy.example.org/alerts"``."""

        # Validation errors would otherwise echo the input, and the URL is the secret.
        model_config = ConfigDict(hide_input_in_errors=True)

        url: SecretStr
        # The whole call: Apprise stops waiting then and reports a timeout.
        timeout: Timeout = timedelta(seconds=30)

        @field_validator("url")
        @classmethod
        def _check_url(cls, value: SecretStr) -> SecretStr:
            if not _SCHEME.match(value.get_secret_value().strip()):
                raise ValueError(
                    "expected an Apprise URL such as ntfy://host/topic, got one without scheme://"
                )
            return SecretStr(value.get_secret_value().strip())

        @property
        def scheme(self) -> str:
            return self.url.get_secret_value().partition("://")[0].lower()

    config: Config

    def __init__(self, name: str, config: Config) -> None:
        import apprise

        super().__init__(name, config)
        self.config = config
        self._apprise = apprise.Apprise()
        # A list, not the string: a string is split at commas and spaces into several URLs.
        if not self._apprise.add([config.url.get_secret_value()]) or len(self._apprise) != 1:
            raise ConfigError(self._prefix() + self._unusable())
        self._service: apprise.NotifyBase = self._apprise[0]
        self._secrets = _secrets(config.url.get_secret_value(), self._service)

    # ----- the Provider contract

    async def send(self, message: Message) -> None:
        problem = await blocking(self._notify, message.reply)
        if problem is not None:
            raise IntegrationError(problem, permanent=False)

    def _notify(self, reply: Reply) -> str | None:
        """In a worker thread: Apprise blocks, and its captured logs may spill to a file."""
        with self._apprise.notify(
            body=markdown_body(reply) or reply.title or " ",
            title=reply.title or "",
            notify_type=NOTIFY_TYPES.get(reply.status, "info"),
            body_format="markdown",
            timeout=self.config.timeout.total_seconds(),
        ) as result:
            return None if result else self._failure(result)

    async def check(self) -> Connectivity:
        return Connectivity(
            Reachability.OK,
            f"{self._shown()}; reachability is only known by sending: `notify test {self.name}`",
        )

    def describe(self) -> str:
        return f"Apprise: {self._shown()}"

    # ----- words

    def _prefix(self) -> str:
        return f"{self.title} {self.name}: "

    def _shown(self) -> str:
        return f"{self._service.service_name} ({self.config.scheme}://)"

    def _unusable(self) -> str:
        """Why Apprise took no service from the URL, naming the scheme only."""
        from apprise import NotificationManager

        scheme = self.config.scheme
        plugins = NotificationManager()  # a singleton: the plugins Apprise has loaded
        if scheme not in plugins:
            return f"Apprise does not know the URL scheme {scheme}://"
        plugin = plugins[scheme]
        if not plugin.enabled:
            return f"{scheme}:// is disabled: Apprise lacks a library {plugin.service_name} needs"
        return (
            f"Apprise cannot use this {scheme}:// URL for {plugin.service_name}; "
            "check it against the service's page in Apprise's documentation"
        )

    def _failure(self, result: apprise.AppriseResult) -> str:
        """Apprise's result in a sentence: its own warnings say why, with secrets masked."""
        from apprise import AppriseResultStatus

        said = [
            tidy(entry.message)
            for entry in result.logs()
            # Its own timeout note repeats ours, with the grace it adds to the limit.
            if entry.message.strip() and "did not finish within" not in entry.message
        ]
        if result.status == AppriseResultStatus.TIMEOUT:
            seconds = self.config.timeout.total_seconds()
            waited = format_duration(self.config.timeout) if seconds >= 1 else f"{seconds:g}s"
            reason = f"{self._service.service_name} did not answer within {waited}"
        else:
            reason = f"{self._service.service_name} did not take the notification"
        if said:
            reason += ": " + "; ".join(dict.fromkeys(said))  # retries repeat themselves
        return redact(self._prefix() + reason, self._secrets)


def _secrets(url: str, service: Any) -> list[str]:
    """Every piece of ``url`` that must not be shown, longest first.

    The URL, its user and password, and every token the plugin declares
    private (what Apprise's own ``url(privacy=True)`` masks).
    """
    found = {url, url.partition("://")[2]}
    try:
        parts = urlsplit(url)
        found |= {parts.username or "", parts.password or ""}
        found |= {unquote(parts.username or ""), unquote(parts.password or "")}
    except ValueError:  # a broken IPv6 literal: the whole URL is still masked
        pass
    found |= {str(getattr(service, attr, "") or "") for attr in ("user", "password")}
    declared = {**getattr(service, "template_tokens", {}), **getattr(service, "template_args", {})}
    for key, spec in declared.items():
        if isinstance(spec, dict) and spec.get("private"):
            value = getattr(service, spec.get("map_to", key), None)
            values = value if isinstance(value, list | tuple | set) else [value]
            found |= {str(v) for v in values if isinstance(v, str | int) and v != ""}
    found.discard(MASK)
    # Shorter ones would mask ordinary words in Apprise's sentences.
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)
