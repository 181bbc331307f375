"""The ``calcifer`` command as a user runs it: real subprocesses, a real SQLite file."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CALCIFER = Path(sys.executable).with_name("calcifer")


def calcifer_env(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """The caller's environment without Calcifer's own settings, plus the test's."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("CALCIFER_", "SLACK_", "DISCORD_"))
    }
    return {
        **clean,
        "CALCIFER_DATABASE_URL": f"sqlite:///{tmp_path / 'calcifer.db'}",
        "XDG_STATE_HOME": str(tmp_path),
        **env,
    }


def calcifer(
    tmp_path: Path, *args: str, input: str | None = None, module: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``calcifer ARGS`` (or ``python -m calcifer_bot ARGS``) in tmp_path."""
    exe = [sys.executable, "-m", "calcifer_bot"] if module else [str(CALCIFER)]
    return subprocess.run(
        [*exe, *args],
        cwd=tmp_path,
        env=calcifer_env(tmp_path, env),
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = calcifer(tmp_path, "chat", "-c", "help")

    assert result.returncode == 0, result.stderr
    for name in ("help", "status", "whoami", "integrations", "roles", "role grant"):
        assert re.search(rf"^{name}\b.* — ", result.stdout, re.MULTILINE), name


def test_unknown_command_suggests_without_traceback(tmp_path: Path) -> None:
    result = calcifer(tmp_path, "chat", "-c", "frobnicate")

    assert result.returncode != 0
    assert "did you mean" in result.stderr
    assert "frobnicate" in result.stderr
    assert_no_traceback(result)


def test_missing_argument_is_named_with_the_usage_line(tmp_path: Path) -> None:
    result = calcifer(tmp_path, "chat", "-c", "role grant slack:U1")

    assert result.returncode != 0
    assert "ROLE is missing" in result.stderr
    assert "Usage: role grant IDENTITY ROLE" in result.stderr
    assert_no_traceback(result)


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (["whoami", "", "# a comment", "status"], 0),
        (["whoami", "frobnicate", "status"], 1),
    ],
    ids=["all-ok", "one-fails"],
)
def test_piped_commands_are_each_answered(tmp_path: Path, lines: list[str], status: int) -> None:
    result = calcifer(tmp_path, "chat", input="\n".join(lines) + "\n")

    assert result.returncode == status, result.stderr
    assert "You are console:local, admin" in result.stdout
    assert "Calcifer status" in result.stdout
    failed = "Unknown command 'frobnicate'" in result.stderr
    assert failed == ("frobnicate" in lines)
    assert_no_traceback(result)


def test_python_m_is_the_same_command(tmp_path: Path) -> None:
    result = calcifer(tmp_path, "chat", "-c", "whoami", module=True)

    assert result.returncode == 0, result.stderr
    assert "You are console:local, admin (console user)." in result.stdout
    assert re.search(r"^  Role: admin$", result.stdout, re.MULTILINE)


@pytest.mark.parametrize(
    ("toml", "env", "named"),
    [
        (None, {"CALCIFER_HTTP_PORT": "eighty"}, "CALCIFER_HTTP_PORT"),
        ("[http]\nprot = 8080\n", {}, "http.prot"),
    ],
    ids=["env", "toml"],
)
def test_invalid_configuration_is_one_line_and_exit_2(
    tmp_path: Path, toml: str | None, env: dict[str, str], named: str
) -> None:
    args = ["chat", "-c", "whoami"]
    if toml is not None:
        (tmp_path / "settings.toml").write_text(toml)
        args += ["--config", "settings.toml"]

    result = calcifer(tmp_path, *args, **env)

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert named in line
    assert_no_traceback(result)


def test_db_upgrade_then_config_check(tmp_path: Path) -> None:
    db_file = tmp_path / "calcifer.db"
    db_file.touch()

    upgrade = calcifer(tmp_path, "db", "upgrade")

    assert upgrade.returncode == 0, upgrade.stderr
    with sqlite3.connect(db_file) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"alembic_version", "endpoints", "incidents", "role_grants", "audit_log"} <= tables

    check = calcifer(
        tmp_path,
        "config",
        "check",
        SLACK_BOT_TOKEN="xoxb-secret-value",
        # Should a Slack integration try its token, it reaches a closed local port.
        CALCIFER_SLACK_API_URL="http://127.0.0.1:1/api/",
    )

    assert "Configuration is valid." in check.stdout
    assert re.search(r"slack\.bot_token\s+set \(hidden\)", check.stdout)
    assert re.search(rf"database_url\s+sqlite:///{re.escape(str(db_file))}", check.stdout)
    assert "Database: ok" in check.stdout
    assert "xoxb-secret-value" not in check.stdout + check.stderr
    assert_no_traceback(check)


def test_unreachable_database_is_a_short_error(tmp_path: Path) -> None:
    result = calcifer(
        tmp_path,
        "chat",
        "-c",
        "whoami",
        CALCIFER_DATABASE_URL="postgresql://postgres:s3cret-pw@127.0.0.1:1/test",
    )

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "cannot open the database" in line
    assert "127.0.0.1:1/test" in line
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert_no_traceback(result)


def test_run_with_the_http_port_taken_is_a_short_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = calcifer(tmp_path, "run", CALCIFER_HTTP_PORT=str(port))

    assert result.returncode == 1
    assert f"cannot start the HTTP server on 127.0.0.1:{port}" in result.stderr
    assert_no_traceback(result)


# -- calcifer run -------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    stderr: list[str]  # complete once the ``running`` block has left

    @property
    def log(self) -> str:
        return "".join(self.stderr)


@contextmanager
def running(tmp_path: Path, **env: str) -> Iterator[Server]:
    """``calcifer run`` without a terminal, once it says where it listens."""
    proc = subprocess.Popen(
        [str(CALCIFER), "run"],
        cwd=tmp_path,
        env=calcifer_env(tmp_path, {"CALCIFER_HTTP_PORT": "0", **env}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ports: list[int] = []
    ready = threading.Event()

    def read_stderr() -> None:  # a thread, so a line is seen the moment it is written
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            found = re.search(r"HTTP server listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                ports.append(int(found.group(1)))
                ready.set()
        ready.set()  # it exited

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout=15), "calcifer run did not start listening within 15 s"
        assert ports, f"calcifer run exited {proc.wait()}:\n{''.join(lines)}"
        yield Server(proc, ports[0], lines)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(timeout=5)


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_serves_health_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    with running(tmp_path) as server:
        assert get(server.port, "/healthz") == (200, {"status": "ok"})
        assert get(server.port, "/readyz") == (
            200,
            {"status": "ok", "checks": {"database": "ok", "scheduler": "ok"}},
        )

        server.proc.send_signal(sig)

        assert server.proc.wait(timeout=5) == 0
    assert "shutting down" in server.log
    assert "Traceback" not in server.log


def test_run_stops_cleanly_on_a_signal_right_after_it_listens(tmp_path: Path) -> None:
    # A supervisor may act on the "listening" line at once; the signal must not kill it.
    with running(tmp_path) as server:
        server.proc.send_signal(signal.SIGTERM)

        assert server.proc.wait(timeout=5) == 0
    assert "shutting down" in server.log


def test_run_checks_the_endpoints_of_the_config_file(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    open_port, closed_port = listener.getsockname()[1], closed.getsockname()[1]
    closed.close()
    (tmp_path / "calcifer.toml").write_text(
        f"""
[[endpoints]]
name = "listening"
type = "tcp"
target = "127.0.0.1:{open_port}"
interval = "1s"
timeout = "1s"

[[endpoints]]
name = "refusing"
type = "tcp"
target = "127.0.0.1:{closed_port}"
interval = "1s"
timeout = "1s"
failures = 1
"""
    )
    try:
        with running(tmp_path) as server:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                metrics = fetch(server.port, "/metrics")
                if 'endpoint="refusing"' in metrics and 'endpoint="listening"' in metrics:
                    break
                time.sleep(0.2)
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(timeout=5) == 0
    finally:
        listener.close()

    up = {
        line.split('endpoint="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
        for line in metrics.splitlines()
        if line.startswith("calcifer_endpoint_up{")
    }
    assert up == {"listening": "1.0", "refusing": "0.0"}
    assert "endpoints from the configuration: added listening" in server.log
    assert "Traceback" not in server.log


def fetch(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()
