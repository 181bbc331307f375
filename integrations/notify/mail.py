"""E-mail over SMTP (aiosmtplib): one mail per message, threaded by Message-ID.

Mail cannot be edited, so a recovery is a new mail that answers the alert's
(``In-Reply-To``) and mail clients show both in one thread. The Message-ID is
derived from the outbox key: a retry after a lost answer carries the same id
and the receiving side can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Literal, Self, TypeVar

import aiosmtplib
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from adapters.text import cut, plain_text
from calcifer_bot.aio import blocking
from calcifer_bot.errors import IntegrationError
from calcifer_bot.http import describe_os_error, tidy
from calcifer_bot.logs import redact
from calcifer_bot.parser import format_duration
from calcifer_bot.reply import Reply, Status
from integrations.base import Connectivity, Reachability
from integrations.notify.base import Message, Provider, ProviderConfig, Timeout

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseException)

Security = Literal["starttls", "tls", "none"]

DEFAULT_PORTS: dict[str, int] = {"tls": 465, "starttls": 587, "none": 25}
_SECURITY_SHOWN: dict[str, str] = {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_address(value: str) -> Address:
    """One mailbox ("ops@example.org" or "Ops <ops@example.org>"), or ValueError."""
    problem = ValueError(f"not an e-mail address: {value!r}")
    # A line break in an address would start a header of the sender's choosing.
    if _CONTROL.search(value):
        raise problem
    found = getaddresses([value])
    if len(found) != 1:
        raise ValueError(f"expected one e-mail address, got {value!r}")
    name, spec = found[0]
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError):  # the parser's ways of saying no
        raise problem from None
    if not address.username or not address.domain:
        raise problem
    return address


class Email(Provider):
    """Mail through an SMTP server: STARTTLS, implicit TLS or plain, with optional login."""

    type = "email"
    title = "E-mail"
    edits = False
    default_rate = "30/1m"

    class Config(ProviderConfig):
        """``type = "email"``: ``to``, ``from``, ``smtp_host``… (``from`` is ``sender`` here)."""

        # The password must not be echoed by an error; addresses are named by the messages.
        model_config = ConfigDict(populate_by_name=True, hide_input_in_errors=True)

        to: list[str] = Field(min_length=1)
        sender: str = Field(default="Calcifer <calcifer@localhost>", alias="from")
        smtp_host: str = Field(min_length=1)
        smtp_port: int | None = Field(default=None, ge=1, le=65535)  # None: by ``security``
        security: Security = "starttls"
        username: str | None = None
        password: SecretStr | None = None
        timeout: Timeout = timedelta(seconds=30)
        ca_file: Path | None = None  # a homelab CA, trusted besides the system's
        subject_prefix: str = "[Calcifer]"

        @field_validator("to")
        @classmethod
        def _check_to(cls, value: list[str]) -> list[str]:
            for item in value:
                parse_address(item)
            return [item.strip() for item in value]

        @field_validator("sender")
        @classmethod
        def _check_sender(cls, value: str) -> str:
            parse_address(value)
            return value.strip()

        @field_validator("smtp_host")
        @classmethod
        def _check_host(cls, value: str) -> str:
            if _CONTROL.search(value) or " " in value or "/" in value:
                raise ValueError(f"expected a host name or address, got {value!r}")
            return value

        @field_validator("subject_prefix")
        @classmethod
        def _check_prefix(cls, value: str) -> str:
            return _one_line(value)

        @field_validator("ca_file")
        @classmethod
        def _check_ca_file(cls, value: Path | None) -> Path | None:
            if value is None:
                return None
            if not value.is_file():
                raise ValueError(f"{value} does not exist")
            # Loaded once here so a wrong file stops start-up instead of every send.
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=value)
            except (ssl.SSLError, OSError):
                raise ValueError(f"{value} is not a PEM file of CA certificates") from None
            return value

        @model_validator(mode="after")
        def _check_login(self) -> Self:
            if (self.username is None) != (self.password is None):
                raise ValueError("set both username and password, or neither")
            return self

        @property
        def port(self) -> int:
            return self.smtp_port or DEFAULT_PORTS[self.security]

    config: Config

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)
        self.config = config
        self._sender = parse_address(config.sender)
        self._recipients = [parse_address(item) for item in config.to]
        self._context: ssl.SSLContext | None = None

    # ----- the Provider contract

    async def send(self, message: Message) -> str:
        mail = self.compose(message)
        try:
            async with self._session() as smtp:
                refused, _ = await smtp.send_message(
                    mail,
                    sender=self._sender.addr_spec,
                    recipients=[r.addr_spec for r in self._recipients],
                )
        except (aiosmtplib.SMTPException, OSError) as exc:  # TimeoutError is an OSError
            raise self._error(exc) from None
        if refused:
            # The others have it: failing now would make the retry a duplicate for them.
            log.warning(
                "%s%s refused %s",
                self._prefix(),
                self._where(),
                ", ".join(
                    f"{addr} ({resp.code} {_said(resp.message)})" for addr, resp in refused.items()
                ),
            )
        return str(mail["Message-ID"])

    async def check(self) -> Connectivity:
        try:
            async with self._session() as smtp:
                if smtp.is_ehlo_or_helo_needed:  # a login or STARTTLS has not said EHLO yet
                    await smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = self._error(exc)
            refused = isinstance(exc, aiosmtplib.SMTPAuthenticationError) and error.permanent
            state = Reachability.INVALID_AUTH if refused else Reachability.CANNOT_CONNECT
            return Connectivity(state, error.message.removeprefix(self._prefix()))
        detail = f"{self._where()}, {_SECURITY_SHOWN[self.config.security]}"
        if self.config.username:
            detail += f", logged in as {self.config.username}"
        return Connectivity(Reachability.OK, detail)

    def describe(self) -> str:
        to = ", ".join(r.addr_spec for r in self._recipients)
        return f"e-mail to {to} via {self._where()} ({_SECURITY_SHOWN[self.config.security]})"

    # ----- the mail

    def message_id(self, key: str) -> str:
        """The same for every attempt at one outbox message, so receivers can drop repeats."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return f"<calcifer.{digest}@{_id_domain(self._sender.domain)}>"

    def compose(self, message: Message) -> EmailMessage:
        reply = message.reply
        mail = EmailMessage()
        first_line = _unmark(reply.text.strip().split("\n", 1)[0])
        subject = _one_line(f"{self.config.subject_prefix} {reply.title or first_line}").strip()
        mail["Subject"] = cut(subject, 200)
        mail["From"] = self._sender
        mail["To"] = self._recipients
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = self.message_id(message.key)
        if message.target and message.op in ("reply", "update"):
            target = _one_line(message.target).strip()
            mail["In-Reply-To"] = target
            mail["References"] = target
        # RFC 3834: vacation responders stay silent; Exchange only honours its own header.
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"
        mail["X-Calcifer-Event"] = _one_line(message.kind)
        for label, header in (
            ("endpoint", "X-Calcifer-Endpoint"),
            ("service", "X-Calcifer-Service"),
        ):
            value = message.labels.get(label)
            if value not in (None, ""):
                mail[header] = _one_line(str(value))
        commands = chat_commands(reply)
        text = plain_text(reply)
        if commands:
            text += "\n\nIn chat: " + " · ".join(f"`{c}`" for c in commands)
        mail.set_content(text + "\n")
        mail.add_alternative(render_html(reply, commands), subtype="html")
        return mail

    # ----- SMTP

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """Connected, encrypted as configured and logged in; QUIT on the way out."""
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.smtp_host,
            port=config.port,
            timeout=config.timeout.total_seconds(),
            use_tls=config.security == "tls",
            # True, not None: None would quietly send in clear when STARTTLS is missing.
            start_tls=config.security == "starttls",
            tls_context=None if config.security == "none" else await self._tls_context(),
        )
        await smtp.connect()
        try:
            if config.username is not None and config.password is not None:
                await smtp.login(config.username, config.password.get_secret_value())
            yield smtp
        except Exception:
            await _goodbye(smtp)
            raise
        else:
            await _goodbye(smtp)
        finally:
            smtp.close()

    async def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = await blocking(_make_context, self.config.ca_file)
        return self._context

    # ----- errors

    def _prefix(self) -> str:
        return f"{self.title} {self.name}: "

    def _where(self) -> str:
        host = self.config.smtp_host
        return f"[{host}]:{self.config.port}" if ":" in host else f"{host}:{self.config.port}"

    def _error(self, exc: BaseException) -> IntegrationError:
        reason, permanent = self._explain(exc)
        password = self.config.password.get_secret_value() if self.config.password else ""
        secrets = [password] if len(password) >= 4 else []
        return IntegrationError(redact(self._prefix() + reason, secrets), permanent=permanent)

    def _explain(self, exc: BaseException) -> tuple[str, bool]:
        """(reason, permanent) in words for the chat channel."""
        where = self._where()
        certificate = _in_chain(exc, ssl.SSLCertVerificationError)
        if certificate is not None:
            said = tidy(certificate.verify_message or certificate.reason or str(certificate))
            if "mismatch" in said.lower():
                hint = "set smtp_host to a name the certificate is made out to"
            else:
                hint = "if a private CA signed it, set ca_file to that CA's certificate"
            return f"the certificate of {where} is not trusted ({said}); {hint}", True
        tls = _in_chain(exc, ssl.SSLError)
        if tls is not None and not isinstance(tls, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            said = tidy(tls.reason or str(tls))
            hint = 'security = "tls" is for port 465, "starttls" for 587'
            return f"the TLS handshake with {where} failed ({said}); {hint}", True
        user = self.config.username
        match exc:
            case aiosmtplib.SMTPAuthenticationError():
                return (
                    f"{where} refused the login for {user} ({exc.code} {_said(exc.message)})",
                    exc.code >= 500,
                )
            case aiosmtplib.SMTPRecipientsRefused():
                shown = ", ".join(
                    f"{r.recipient} ({r.code} {_said(r.message)})" for r in exc.recipients
                )
                # Permanent only if no refusal was temporary: a retry reaches those.
                permanent = all(r.code >= 500 for r in exc.recipients)
                return f"{where} refused every recipient: {shown}", permanent
            case aiosmtplib.SMTPSenderRefused():
                return (
                    f"{where} refused the sender {exc.sender} ({exc.code} {_said(exc.message)})",
                    exc.code >= 500,
                )
            case aiosmtplib.SMTPDataError():
                return (
                    f"{where} refused the message ({exc.code} {_said(exc.message)})",
                    exc.code >= 500,
                )
            case aiosmtplib.SMTPConnectResponseError():
                return (
                    f"{where} refused the connection ({exc.code} {_said(exc.message)})",
                    exc.code >= 500,
                )
            case aiosmtplib.SMTPTimeoutError() | TimeoutError():
                said = f"{where} did not answer within {_seconds(self.config.timeout)}"
                if "ready message" in str(exc) and self.config.security != "tls":
                    # A TLS port waits for our handshake while we wait for its greeting.
                    said += '; if it speaks TLS from the start (port 465), set security = "tls"'
                return said, False
            case aiosmtplib.SMTPConnectError():
                cause = exc.__cause__
                if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
                    return (
                        f"cannot connect to {where}: {_os_reason(cause, self.config.smtp_host)}",
                        False,
                    )
                return f"cannot connect to {where}", False
            case aiosmtplib.SMTPServerDisconnected():
                return f"{where} closed the connection", False
            case aiosmtplib.SMTPResponseException():
                return f"{where} answered {exc.code} {_said(exc.message)}", exc.code >= 500
            case aiosmtplib.SMTPNotSupported():
                return f"{where}: {tidy(exc.message)}", True
            case aiosmtplib.SMTPException() if "STARTTLS extension" in exc.message:
                hint = 'set security = "tls" if it takes TLS on connect (port 465), else "none"'
                return f"{where} does not offer STARTTLS; {hint}", True
            case aiosmtplib.SMTPException() if "AUTH extension" in exc.message:
                hint = (
                    ""
                    if self.config.security != "none"
                    else ' (over TLS it may: security = "starttls")'
                )
                return f"{where} offers no login (SMTP AUTH){hint}", True
            case aiosmtplib.SMTPException():
                return f"{where}: {tidy(exc.message)}", False
            case OSError():
                return f"{where}: {_os_reason(exc, self.config.smtp_host)}", False
        return f"{where}: {tidy(str(exc)) or type(exc).__name__}", False


# --------------------------------------------------------------------------- rendering

_COLOURS: dict[Status, str] = {
    Status.OK: "#2e7d32",
    Status.INFO: "#1565c0",
    Status.WARNING: "#ef6c00",
    Status.ERROR: "#c62828",
}
_FENCE = re.compile(r"```[^\n`]*\n?(.*?)```", re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`|\*\*(.+?)\*\*")
_CODE_STYLE = "font-family:Consolas,Menlo,monospace;background:#f3f4f6;padding:0 3px"


def chat_commands(reply: Reply) -> list[str]:
    """What the buttons would have run: a mail reader types them in chat instead."""
    return [b.command for b in reply.buttons if b.command]


def render_html(reply: Reply, commands: list[str] | None = None) -> str:
    """A small self-contained page: inline styles only, every piece of text escaped."""
    colour = _COLOURS.get(reply.status, _COLOURS[Status.INFO])
    parts: list[str] = []
    if reply.title:
        parts.append(
            f'<h2 style="margin:0 0 8px;font-size:18px;color:{colour}">'
            f"{html.escape(reply.title)}</h2>"
        )
    parts += _blocks(reply.text)
    if reply.fields:
        rows = "".join(
            f'<tr><th align="left" valign="top" style="padding:2px 12px 2px 0;color:#374151">'
            f"{html.escape(f.name)}</th><td>{_inline(f.value)}</td></tr>"
            for f in reply.fields
        )
        parts.append(f'<table style="border-collapse:collapse;margin:8px 0">{rows}</table>')
    if commands:
        shown = " · ".join(f'<code style="{_CODE_STYLE}">{html.escape(c)}</code>' for c in commands)
        parts.append(f'<p style="margin:8px 0">In chat: {shown}</p>')
    if reply.footer:
        parts.append(
            f'<p style="margin:12px 0 0;font-size:12px;color:#6b7280">{_inline(reply.footer)}</p>'
        )
    title = html.escape(reply.title or "Calcifer")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n"
        '<body style="margin:0;padding:16px;font-family:-apple-system,Segoe UI,Helvetica,Arial,'
        'sans-serif;font-size:14px;color:#111827">\n'
        f'<div style="border-left:4px solid {colour};padding:4px 12px">\n{body}\n</div>\n'
        "</body></html>\n"
    )


def _blocks(text: str) -> list[str]:
    """Paragraphs and ``` blocks."""
    out: list[str] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        out += _paragraphs(text[pos : fence.start()])
        code = html.escape(fence.group(1).rstrip("\n"))
        out.append(f'<pre style="{_CODE_STYLE};padding:8px;white-space:pre-wrap">{code}</pre>')
        pos = fence.end()
    out += _paragraphs(text[pos:])
    return out


def _paragraphs(text: str) -> list[str]:
    return [
        f'<p style="margin:0 0 8px">{_inline(p.strip())}</p>'
        for p in re.split(r"\n\s*\n", text)
        if p.strip()
    ]


def _inline(text: str) -> str:
    """`code` and **bold**; everything else escaped, line breaks kept."""
    out: list[str] = []
    pos = 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[pos : match.start()]))
        if match.group(1) is not None:
            out.append(f'<code style="{_CODE_STYLE}">{html.escape(match.group(1))}</code>')
        else:
            out.append(f"<strong>{_inline(match.group(2))}</strong>")
        pos = match.end()
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("\n", "<br>\n")


# --------------------------------------------------------------------------- helpers


def _one_line(text: str) -> str:
    """Header values: a CR or LF would end the header and let the text start another."""
    return _CONTROL.sub(" ", text)


def _unmark(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def _said(text: str) -> str:
    """A server's reply text on one line, cut: it is shown in chat."""
    return cut(" ".join(text.split()), 200)


def _seconds(delta: timedelta) -> str:
    """30s, 2m; below a second (tests, impatient settings) as 0.5s rather than 0s."""
    seconds = delta.total_seconds()
    return format_duration(delta) if seconds >= 1 else f"{seconds:g}s"


def _id_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "calcifer.invalid"


def _os_reason(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host '{host}'"
    return describe_os_error(exc)


def _in_chain(exc: BaseException, kind: type[E]) -> E | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _make_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


async def _goodbye(smtp: aiosmtplib.SMTP) -> None:
    if smtp.is_connected:
        # The mail is sent (or refused) already; a failed QUIT changes neither.
        with suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()
