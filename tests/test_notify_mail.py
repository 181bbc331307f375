"""E-mail against a real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS,
implicit TLS and AUTH, with a throw-away CA from tests/pki.py. The mail a person's
client would show is parsed back and checked, not the bytes we meant to send."""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError

from adapters.text import plain_text
from calcifer_bot.config import load_settings
from calcifer_bot.errors import ConfigError, IntegrationError
from calcifer_bot.reply import Button, Field, Reply, Status
from integrations.base import Reachability
from integrations.notify import provider_class
from integrations.notify.base import Message
from integrations.notify.mail import Email
from tests.pki import Pki

USER, PASSWORD = "calcifer", "correct-horse-battery"

# --------------------------------------------------------------------------- certificates


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A homelab CA (``ca_file``) and the server's certificate it signed, "server"."""
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.leaf("server")  # for 127.0.0.1 and localhost
    return pki


# --------------------------------------------------------------------------- the server


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    cipher: Any  # what the server's transport reports: None when in clear


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and refuses what it is told to."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> "550 …"
    logins: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, user)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = cast(EmailMessage, message_from_bytes(envelope.content, policy=policy.default))
        cipher = server.transport.get_extra_info("cipher")
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, cipher))
        return "250 2.0.0 queued"

    def authenticator(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, user))
        return AuthResult(success=(user, password) == (USER, PASSWORD), handled=False)


def free_port() -> int:
    # aiosmtpd's Controller connects to its own port once started, so it needs the
    # number up front: port 0 will not do.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(
    mailbox: Mailbox, security: str = "none", certificates: Pki | None = None, **options: Any
) -> Iterator[int]:
    """aiosmtpd on 127.0.0.1; its port. ``security`` as the provider names it: "none";
    "starttls" required, AUTH only after it, as a submission server (587) does; or
    "tls" from the first byte, as on port 465. A TLS server takes AUTH (USER, PASSWORD)."""
    if security != "none":
        assert certificates is not None
        context = certificates.server_context("server")
        options.setdefault("authenticator", mailbox.authenticator)
        if security == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            # aiosmtpd counts only STARTTLS as TLS and would not offer AUTH here at all.
            options.update(ssl_context=context, auth_require_tls=False)
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def plain_port(mailbox: Mailbox) -> Iterator[int]:
    with smtp_server(mailbox) as port:
        yield port


@pytest.fixture
def starttls_port(mailbox: Mailbox, certificates: Pki) -> Iterator[int]:
    with smtp_server(mailbox, "starttls", certificates) as port:
        yield port


@pytest.fixture
def tls_port(mailbox: Mailbox, certificates: Pki) -> Iterator[int]:
    with smtp_server(mailbox, "tls", certificates) as port:
        yield port


# --------------------------------------------------------------------------- helpers


def email(port: int, **settings: Any) -> Email:
    """A provider as configuration builds it (TOML keys, ``from`` included)."""
    table: dict[str, Any] = {
        "to": ["ops@example.org", "Dev Team <dev@example.org>"],
        "from": "Calcifer <calcifer@example.org>",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
        "timeout": 5,
    }
    table.update(settings)
    return Email("ops-mail", Email.Config.model_validate(table))


def tls_email(port: int, security: str, certificates: Pki, **settings: Any) -> Email:
    """A provider with ``security`` "starttls" or "tls" that trusts the test CA."""
    return email(port, security=security, ca_file=str(certificates.ca_file), **settings)


ALERT = Reply(
    title="web is down",
    text="**web** has been down for `5m`.\nLast error: connection refused",
    status=Status.ERROR,
    fields=(Field("Endpoint", "web"), Field("Target", "10.0.0.5:443")),
    footer="Calcifer · alert 17",
    buttons=(Button("Ack", "ack 17"), Button("Mute 1h", "mute web 1h"), Button("Cancel", None)),
)


def alert(reply: Reply = ALERT, **fields: Any) -> Message:
    fields.setdefault("key", "alert:17@notify:ops-mail")
    fields.setdefault("kind", "alert")
    fields.setdefault("op", "post")
    fields.setdefault("labels", {"endpoint": "web", "service": "shop"})
    return Message(reply=reply, **fields)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None and page is not None
    # SMTP carries CRLF line ends; a reader shows lines.
    return _lines(text), _lines(page)


def _lines(part: Any) -> str:
    return str(cast(EmailMessage, part).get_content()).replace("\r\n", "\n")


# --------------------------------------------------------------------------- what arrives


async def test_a_mail_arrives_with_envelope_and_headers(mailbox: Mailbox, plain_port: int) -> None:
    sent_id = await email(plain_port).send(alert())

    [got] = mailbox.received
    assert got.mail_from == "calcifer@example.org"
    assert got.rcpt_tos == ["ops@example.org", "dev@example.org"]
    mail = got.message
    assert mail["Subject"] == "[Calcifer] web is down"
    assert mail["From"] == "Calcifer <calcifer@example.org>"
    assert mail["To"] == "ops@example.org, Dev Team <dev@example.org>"
    sent_at = parsedate_to_datetime(mail["Date"])
    assert abs(sent_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert mail["Message-ID"] == sent_id
    assert sent_id.startswith("<calcifer.") and sent_id.endswith("@example.org>")
    assert mail["Auto-Submitted"] == "auto-generated"  # no vacation replies to the bot
    assert mail["X-Calcifer-Event"] == "alert"
    assert mail["X-Calcifer-Endpoint"] == "web"
    assert mail["X-Calcifer-Service"] == "shop"
    assert mail["In-Reply-To"] is None  # a new thread
    assert mail.get_content_type() == "multipart/alternative"


async def test_both_parts_carry_the_reply(mailbox: Mailbox, plain_port: int) -> None:
    await email(plain_port).send(alert())

    text, page = parts(mailbox.received[0].message)
    assert plain_text(ALERT) in text
    # Buttons cannot be pressed in a mail reader: the commands are spelled out.
    assert "In chat: `ack 17` · `mute web 1h`" in text
    assert "Cancel" not in text
    assert "<strong>web</strong>" in page
    assert ">5m</code>" in page
    assert "#c62828" in page  # the title in the error colour
    assert ">Target</th><td>10.0.0.5:443</td>" in page
    assert "Calcifer · alert 17" in page
    assert ">ack 17</code> · <code" in page
    for remote in ("src=", "href=", "<link", "url("):  # nothing fetched when it is opened
        assert remote not in page


async def test_html_escapes_everything_it_is_given(mailbox: Mailbox, plain_port: int) -> None:
    hostile = Reply(
        title="<script>alert(1)</script>",
        text="a < b && `<b>not bold</b>` **<i>x</i>**",
        fields=(Field("<img src=x onerror=alert(1)>", "\"quoted\" & 'single'"),),
        footer="</div><iframe>",
    )
    await email(plain_port).send(alert(hostile))

    _, page = parts(mailbox.received[0].message)
    for tag in ("<script", "<img", "<iframe", "<b>", "<i>", "</div><"):
        assert tag not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &lt; b &amp;&amp;" in page
    assert "&lt;b&gt;not bold&lt;/b&gt;</code>" in page
    assert "<strong>&lt;i&gt;x&lt;/i&gt;</strong>" in page


async def test_without_a_title_the_subject_is_the_first_line(
    mailbox: Mailbox, plain_port: int
) -> None:
    reply = Reply(text="**db** answers slowly\nfor 10 minutes now")
    await email(plain_port, subject_prefix="[lab]").send(alert(reply))

    assert mailbox.received[0].message["Subject"] == "[lab] db answers slowly"


async def test_a_line_break_in_the_title_cannot_add_headers(
    mailbox: Mailbox, plain_port: int
) -> None:
    reply = Reply(title="Disk full\r\nBcc: evil@example.net\nX-Evil: 1", text="sda1")
    await email(plain_port).send(alert(reply))

    [got] = mailbox.received
    assert got.rcpt_tos == ["ops@example.org", "dev@example.org"]
    assert got.message["Bcc"] is None and got.message["X-Evil"] is None
    subject = got.message["Subject"]
    assert subject.startswith("[Calcifer] Disk full") and "evil@example.net" in subject
    assert "\n" not in subject and "\r" not in subject


async def test_a_retry_carries_the_same_message_id(mailbox: Mailbox, plain_port: int) -> None:
    provider = email(plain_port)
    first = await provider.send(alert())
    again = await email(plain_port).send(alert(retried=True))  # a new process, even
    other = await provider.send(alert(key="alert:18@notify:ops-mail"))

    assert first == again != other
    assert [r.message["Message-ID"] for r in mailbox.received] == [first, first, other]


async def test_a_reply_is_threaded_under_the_post(mailbox: Mailbox, plain_port: int) -> None:
    provider = email(plain_port)
    posted = await provider.send(alert())
    recovery = Reply(title="web is up", text="after 12m", status=Status.OK)
    await provider.send(
        alert(
            recovery, key="recovery:17@notify:ops-mail", kind="recovery", op="reply", target=posted
        )
    )

    answer = mailbox.received[1].message
    assert answer["In-Reply-To"] == posted
    assert answer["References"] == posted
    assert answer["X-Calcifer-Event"] == "recovery"
    assert answer["Message-ID"] != posted


async def test_partly_refused_recipients_still_deliver(
    mailbox: Mailbox, plain_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # The others have the mail: an error now would make the outbox send it to them again.
    mailbox.refuse["dev@example.org"] = "550 5.1.1 no such user"
    await email(plain_port).send(alert())

    assert mailbox.received[0].rcpt_tos == ["ops@example.org"]
    assert "dev@example.org (550 5.1.1 no such user)" in caplog.text


# --------------------------------------------------------------------------- TLS


async def test_starttls_encrypts_the_session(
    mailbox: Mailbox, starttls_port: int, certificates: Pki
) -> None:
    provider = tls_email(starttls_port, "starttls", certificates)
    await provider.send(alert())

    assert mailbox.received[0].cipher is not None


async def test_implicit_tls_encrypts_the_session(
    mailbox: Mailbox, tls_port: int, certificates: Pki
) -> None:
    provider = tls_email(tls_port, "tls", certificates)
    await provider.send(alert())

    assert mailbox.received[0].cipher is not None


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_an_untrusted_certificate_is_permanent_and_names_ca_file(
    security: str, mailbox: Mailbox, certificates: Pki
) -> None:
    with (
        smtp_server(mailbox, security, certificates) as port,
        pytest.raises(IntegrationError) as caught,
    ):
        await email(port, security=security).send(alert())

    assert caught.value.permanent
    assert caught.value.message.startswith("E-mail ops-mail: ")
    assert f"127.0.0.1:{port} is not trusted" in caught.value.message
    assert "ca_file" in caught.value.message
    assert mailbox.received == []


async def test_a_server_without_starttls_is_permanent_with_a_hint(
    mailbox: Mailbox, plain_port: int
) -> None:
    # Sending in clear instead would be a silent downgrade.
    with pytest.raises(IntegrationError) as caught:
        await email(plain_port, security="starttls").send(alert())

    assert caught.value.permanent
    assert "does not offer STARTTLS" in caught.value.message
    assert 'security = "tls"' in caught.value.message and '"none"' in caught.value.message
    assert mailbox.received == []


# --------------------------------------------------------------------------- AUTH


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_login_with_good_credentials_delivers(
    mechanism: str, mailbox: Mailbox, certificates: Pki
) -> None:
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    with smtp_server(mailbox, "starttls", certificates, auth_exclude_mechanism=[other]) as port:
        provider = tls_email(port, "starttls", certificates, username=USER, password=PASSWORD)
        await provider.send(alert())

    assert mailbox.logins == [(mechanism, USER)]
    assert len(mailbox.received) == 1


async def test_refused_credentials_are_permanent_and_never_show_the_password(
    mailbox: Mailbox, tls_port: int, certificates: Pki
) -> None:
    wrong = "not-the-password-42"
    provider = tls_email(tls_port, "tls", certificates, username=USER, password=wrong)
    with pytest.raises(IntegrationError) as caught:
        await provider.send(alert())

    message = caught.value.message
    assert caught.value.permanent
    assert message.startswith(f"E-mail ops-mail: 127.0.0.1:{tls_port} refused the login for {USER}")
    assert "(535 " in message
    assert wrong not in message and wrong not in repr(caught.value)
    assert mailbox.received == []


# --------------------------------------------------------------------------- refusals and failures


async def test_a_recipient_refused_with_550_is_permanent(mailbox: Mailbox, plain_port: int) -> None:
    mailbox.refuse["ops@example.org"] = "550 5.1.1 <ops@example.org>: no such user"
    with pytest.raises(IntegrationError) as caught:
        await email(plain_port, to=["ops@example.org"]).send(alert())

    assert caught.value.permanent
    assert "refused every recipient: ops@example.org (550 5.1.1" in caught.value.message


async def test_a_recipient_refused_with_451_is_transient(mailbox: Mailbox, plain_port: int) -> None:
    mailbox.refuse["ops@example.org"] = "451 4.7.1 greylisted, try again later"
    with pytest.raises(IntegrationError) as caught:
        await email(plain_port, to=["ops@example.org"]).send(alert())

    assert not caught.value.permanent
    assert "(451 4.7.1 greylisted" in caught.value.message


async def test_nothing_listening_is_transient_and_quick(closed_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(IntegrationError) as caught:
        await email(closed_port).send(alert())

    assert time.monotonic() - started < 2
    assert not caught.value.permanent
    assert caught.value.message == (
        f"E-mail ops-mail: cannot connect to 127.0.0.1:{closed_port}: connection refused"
    )


async def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(IntegrationError) as caught:
        await email(silent_port, timeout=0.5).send(alert())

    assert 0.4 < time.monotonic() - started < 3
    assert not caught.value.permanent
    assert f"127.0.0.1:{silent_port} did not answer within 0.5s" in caught.value.message


# --------------------------------------------------------------------------- check


async def test_check_logs_in_and_sends_nothing(
    mailbox: Mailbox, starttls_port: int, certificates: Pki
) -> None:
    provider = tls_email(starttls_port, "starttls", certificates, username=USER, password=PASSWORD)
    result = await provider.check()

    assert result.state is Reachability.OK
    assert result.detail == f"127.0.0.1:{starttls_port}, STARTTLS, logged in as {USER}"
    assert mailbox.logins == [("PLAIN", USER)]
    assert mailbox.received == []


async def test_check_reports_refused_credentials_as_invalid_auth(
    mailbox: Mailbox, starttls_port: int, certificates: Pki
) -> None:
    provider = tls_email(
        starttls_port, "starttls", certificates, username=USER, password="wrong-password"
    )
    result = await provider.check()

    assert result.state is Reachability.INVALID_AUTH
    assert "refused the login for calcifer" in result.detail
    assert "wrong-password" not in result.detail
    assert mailbox.received == []


async def test_check_without_a_server_cannot_connect(closed_port: int) -> None:
    result = await email(closed_port).check()

    assert result.state is Reachability.CANNOT_CONNECT
    assert f"127.0.0.1:{closed_port}" in result.detail


async def test_check_without_login_says_so(mailbox: Mailbox, plain_port: int) -> None:
    result = await email(plain_port).check()

    assert result.state is Reachability.OK
    assert result.detail == f"127.0.0.1:{plain_port}, no TLS"
    assert mailbox.received == []


# --------------------------------------------------------------------------- configuration


def config(**table: Any) -> Email.Config:
    table.setdefault("to", ["ops@example.org"])
    table.setdefault("smtp_host", "mail.example.org")
    return Email.Config.model_validate(table)


def test_the_registry_finds_the_provider() -> None:
    assert provider_class("email") is Email


@pytest.mark.parametrize(
    "bad", ["ops@", "not an address", "a@b.org, c@d.org", "x@y.org\nBcc: z@e.vil"]
)
def test_a_bad_address_in_to_is_named(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(to=["ops@example.org", bad])
    assert repr(bad) in str(caught.value)


def test_to_needs_an_address() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        config(to=[])


def test_a_password_needs_a_username() -> None:
    with pytest.raises(ValidationError) as caught:
        config(password="hunter2-is-secret")
    assert "set both username and password, or neither" in str(caught.value)
    assert "hunter2-is-secret" not in str(caught.value)


def test_ca_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        config(ca_file=str(tmp_path / "homelab-ca.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ValidationError, match="not a PEM file"):
        config(ca_file=str(garbage))


def test_from_is_the_toml_key_and_sender_works_too() -> None:
    assert config(**{"from": "Ops <ops@lab.example>"}).sender == "Ops <ops@lab.example>"
    assert config(sender="ops@lab.example").sender == "ops@lab.example"
    assert config().sender == "Calcifer <calcifer@localhost>"
    with pytest.raises(ValidationError, match="not an e-mail address"):
        config(**{"from": "Calcifer"})


@pytest.mark.parametrize(
    ("security", "port", "shown"),
    [("tls", 465, "TLS"), ("starttls", 587, "STARTTLS"), ("none", 25, "no TLS")],
)
def test_the_port_follows_security_and_describe_says_where(
    security: str, port: int, shown: str
) -> None:
    provider = Email("ops-mail", config(to=["a@x.org", "B <b@y.org>"], security=security))
    assert (
        provider.describe() == f"e-mail to a@x.org, b@y.org via mail.example.org:{port} ({shown})"
    )
    explicit = Email("ops-mail", config(security=security, smtp_port=2525))
    assert "mail.example.org:2525" in explicit.describe()


def test_a_settings_file_error_never_shows_the_password(tmp_path: Path) -> None:
    file = tmp_path / "calcifer.toml"
    file.write_text(
        "[notifications.destinations.ops-mail]\n"
        'type = "email"\n'
        'to = ["ops@example.org"]\n'
        'smtp_host = "mail.example.org"\n'
        'password = "hunter2-is-secret"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(file, environ={})
    assert "set both username and password" in caught.value.message
    assert "hunter2-is-secret" not in caught.value.message
