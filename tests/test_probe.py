"""``calcifer probe`` as a user runs it: a real subprocess against servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from calcifer_bot.cli import main
from tests.localhttp import serve
from tests.test_cli import calcifer_env

LOCAL = "127.0.0.1"


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


async def probe(
    tmp_path: Path, *args: str, input: str | None = None, stderr_tty: bool = False
) -> Done:
    """Run ``python -m calcifer_bot probe ARGS``; stderr on a pseudo-terminal if asked."""
    master = slave = None
    if stderr_tty:
        master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "calcifer_bot",
        "probe",
        *args,
        cwd=tmp_path,
        env=calcifer_env(tmp_path, {}),
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=slave if slave is not None else asyncio.subprocess.PIPE,
    )
    if slave is not None:
        os.close(slave)
    stdout, stderr = await asyncio.wait_for(
        proc.communicate(input.encode() if input is not None else None), 60
    )
    if master is not None:
        stderr = _drain(master)
    assert proc.returncode is not None
    return Done(proc.returncode, stdout.decode(), (stderr or b"").decode())


def _drain(fd: int) -> bytes:
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the child's side is closed
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


@dataclass
class Server:
    port: int
    requests: int = 0

    def url(self, path: str = "/ok") -> str:
        return f"http://{LOCAL}:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(0)

    async def ok(request: web.Request) -> web.Response:
        state.requests += 1
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([web.get("/ok", ok)])
    runner, _ = await serve(app, shutdown_timeout=0.1)
    state.port = runner.addresses[0][1]
    yield state
    await runner.cleanup()


async def test_all_up_exits_0(tmp_path: Path, server: Server) -> None:
    lines = ["# the NAS", "", server.url(), f"tcp://{LOCAL}:{server.port}", "   "]
    if os.geteuid() == 0:  # ICMP as a user needs the sysctl; test_checks covers that path
        lines.append(f"icmp://{LOCAL}")
    (tmp_path / "targets.txt").write_text("\n".join(lines) + "\n")

    done = await probe(tmp_path, "-f", "targets.txt")

    assert done.returncode == 0, done.stderr
    targets = [line for line in lines if line.strip() and not line.startswith("#")]
    assert [line.split()[0] for line in done.lines] == targets
    assert all(line.split()[1] == "up" and line.endswith(" ms") for line in done.lines)
    assert done.stderr == "", "no progress bar when stderr is not a terminal"


async def test_one_closed_port_exits_1(tmp_path: Path, server: Server, closed_port: int) -> None:
    done = await probe(tmp_path, f"tcp://{LOCAL}:{closed_port}", server.url())

    assert done.returncode == 1, done.stderr
    refused, ok = done.lines
    assert refused.split()[:3] == [f"tcp://{LOCAL}:{closed_port}", "down", "-"]
    assert refused.endswith("connection refused")
    assert ok.split()[:2] == [server.url(), "up"]


async def test_bad_line_exits_2_naming_it_and_checks_nothing(
    tmp_path: Path, server: Server
) -> None:
    (tmp_path / "targets.txt").write_text(
        f"{server.url()}\n# comment\ntcp://{LOCAL}\nftp://{LOCAL}/\n"
    )

    done = await probe(tmp_path, "-f", "targets.txt")

    assert done.returncode == 2
    assert done.stdout == ""
    assert "calcifer: targets.txt line 3: tcp needs a port: tcp://HOST:PORT" in done.stderr
    assert "calcifer: targets.txt line 4: unknown scheme 'ftp://'" in done.stderr
    assert "Traceback" not in done.stderr
    assert server.requests == 0


async def test_json_lines_from_stdin(tmp_path: Path, server: Server, closed_port: int) -> None:
    targets = [server.url(), f"tcp://{LOCAL}:{closed_port}", "dns://localhost"]

    done = await probe(tmp_path, "--json", "-f", "-", input="\n".join(targets) + "\n")

    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.lines]
    assert [r["target"] for r in records] == targets
    assert all(set(r) == {"target", "up", "latency_ms", "error"} for r in records)
    assert [r["up"] for r in records] == [True, False, True]
    assert records[1] == {
        "target": targets[1],
        "up": False,
        "latency_ms": None,
        "error": "connection refused",
    }
    assert isinstance(records[0]["latency_ms"], float) and records[0]["error"] is None


async def test_timeout_flag(tmp_path: Path, silent_port: int) -> None:
    done = await probe(tmp_path, "--timeout", "0.3", "--json", f"http://{LOCAL}:{silent_port}/")

    assert done.returncode == 1
    assert json.loads(done.stdout)["error"] == "timed out after 0.3 s"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no targets"),
        (("--concurrency", "0", "tcp://h:1"), "--concurrency: must be more than 0"),
        (("--timeout", "soon", "tcp://h:1"), "--timeout: expected a number"),
        (("-f", "missing.txt"), "cannot read missing.txt"),
    ],
    ids=["no-targets", "concurrency", "timeout", "missing-file"],
)
def test_bad_usage_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    # In-process: these end before anything is checked, and a subprocess costs seconds.
    monkeypatch.chdir(tmp_path)
    status: int | str | None
    try:
        status = main(["probe", *args])
    except SystemExit as exc:  # argparse's own usage errors
        status = exc.code

    assert status == 2
    assert message in capsys.readouterr().err


async def test_progress_bar_only_on_a_terminal(tmp_path: Path, server: Server) -> None:
    done = await probe(tmp_path, server.url(), f"tcp://{LOCAL}:{server.port}", stderr_tty=True)

    assert done.returncode == 0
    assert "\r[" in done.stderr and "] 2/2" in done.stderr
    assert done.stderr.endswith("\r\x1b[K"), "the bar is wiped before exit"
    assert "\r" not in done.stdout and len(done.lines) == 2
