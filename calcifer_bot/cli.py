"""``calcifer``: run, chat, probe, config check, db upgrade.

Exit status: 0 success, 1 a command or check failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import IO, Any, TypeVar

import integrations
from adapters import chat_adapters
from adapters.console import ConsoleAdapter
from calcifer_bot import __version__, runtime
from calcifer_bot.aio import blocking
from calcifer_bot.config import Settings, load_settings
from calcifer_bot.db import Database
from calcifer_bot.errors import CalciferError, UsageError
from calcifer_bot.logs import setup_logging

T = TypeVar("T")
N = TypeVar("N", int, float)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="TOML file (default: $CALCIFER_CONFIG or ./calcifer.toml)"
    )
    parser = argparse.ArgumentParser(prog="calcifer", description="Chat-ops for homelabs.")
    parser.add_argument("--version", action="version", version=f"calcifer {__version__}")
    sub = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")

    sub.add_parser("run", parents=[common], help="the main job: scheduler, HTTP server, chat")

    chat = sub.add_parser("chat", parents=[common], help="the console adapter")
    chat.add_argument("-c", dest="command", metavar="COMMAND", help="run one command and exit")

    config = sub.add_parser("config", help="configuration")
    config_sub = config.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    config_sub.add_parser(
        "check", parents=[common], help="validate configuration, test every integration"
    )

    probe = sub.add_parser(
        "probe",
        help="check ad-hoc targets once (no database, no configuration)",
        description="One sweep over targets, one per line: icmp://HOST, tcp://HOST:PORT, "
        "http://…, https://… (also tls://HOST:PORT, dns://NAME). Exit status 0 when all are "
        "up, 1 when any is down, 2 on bad input.",
    )
    probe.add_argument(
        "-f", dest="file", metavar="FILE", help="read targets from FILE, one per line; - is stdin"
    )
    probe.add_argument(
        "--concurrency", type=_positive(int), default=500, metavar="N", help="default 500"
    )
    probe.add_argument(
        "--timeout", type=_positive(float), default=5.0, metavar="SECONDS", help="default 5"
    )
    probe.add_argument("--json", action="store_true", help="one JSON object per line")
    probe.add_argument("targets", nargs="*", metavar="TARGET")

    discord = sub.add_parser("discord", help="Discord setup")
    discord_sub = discord.add_subparsers(dest="discord_action", required=True, metavar="ACTION")
    sync = discord_sub.add_parser(
        "sync",
        parents=[common],
        help="register the /calcifer command globally, or in one guild",
        description="Registers /calcifer globally (Discord may take a few minutes to show it "
        "everywhere), or in one guild with --guild (instant). Guilds in CALCIFER_DISCORD_GUILDS "
        "are synced at every start and need no sync.",
    )
    sync.add_argument("--guild", type=_positive(int), metavar="ID", help="only this guild")
    invite = discord_sub.add_parser(
        "invite", parents=[common], help="print the URL that adds Calcifer to a server"
    )
    invite.add_argument(
        "--client-id",
        type=_positive(int),
        metavar="ID",
        help="the application id (default: asked from Discord with DISCORD_BOT_TOKEN)",
    )
    invite.add_argument("--guild", type=_positive(int), metavar="ID", help="preselect a server")

    db = sub.add_parser("db", help="database")
    db_sub = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", parents=[common], help="apply schema migrations")
    revision = db_sub.add_parser(
        "revision", parents=[common], help="(developers) generate a migration from models.py"
    )
    revision.add_argument("message", help="what the migration does")
    return parser


def _positive(kind: Callable[[str], N]) -> Callable[[str], N]:
    """An argparse type: ``kind(text)``, more than 0."""

    def convert(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
        return value

    return convert


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "probe":  # needs neither configuration nor database
        try:
            return _probe(args)
        except KeyboardInterrupt:
            return 130
    try:
        settings = load_settings(args.config)
    except CalciferError as exc:
        for line in exc.message.splitlines():
            print(f"calcifer: invalid configuration: {line}", file=sys.stderr)
        return 2
    quiet = args.action != "run" and settings.origin("log_level") == "default"
    setup_logging("WARNING" if quiet else settings.log_level, settings.secret_values())
    try:
        if args.action == "run":
            asyncio.run(runtime.run(settings, terminal=sys.stdin.isatty()))
            return 0
        if args.action == "chat":
            return asyncio.run(_chat(settings, args.command))
        if args.action == "config":
            return asyncio.run(_config_check(settings))
        if args.action == "discord":
            return asyncio.run(_discord(settings, args))
        if args.db_action == "revision":
            return _db_revision(args.message)
        return asyncio.run(_db_upgrade(settings))
    except CalciferError as exc:
        print(f"calcifer: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _chat(settings: Settings, command: str | None) -> int:
    async with runtime.open_core(settings) as core:
        adapter = ConsoleAdapter(core)
        if command is not None:
            reply = await adapter.run_one(command, errors_to_stderr=True)
            return 0 if reply.ok else 1
        if sys.stdin.isatty():
            await adapter.run_interactive(runtime.history_file())
            return 0
        return 0 if await adapter.run_lines(sys.stdin) else 1


async def _config_check(settings: Settings) -> int:
    print("Configuration is valid.")
    for key, value, origin in settings.describe():
        print(f"  {key:<22} {value}  ({origin})")
    async with runtime.open_core(settings) as core:
        current, head = await blocking(core.db.revision)
        print(f"Database: ok ({core.db.kind}, schema {current}, newest {head})")
        results = await integrations.check_all()
        chats: dict[str, integrations.Connectivity] = {}
        for chat in chat_adapters(core, settings):
            chats[chat.platform] = await chat.check_connectivity()
            await chat.stop()
    print("Integrations:" if results else "Integrations: none installed")
    for name, result in results.items():
        print(f"  {name:<22} {result}")
    print("Chat:" if chats else "Chat: no Slack or Discord credentials (the console only)")
    for name, result in chats.items():
        print(f"  {name:<22} {result}")
    found = [*results.values(), *chats.values()]
    return 1 if any(r.failing for r in found) else 0


async def _discord(settings: Settings, args: argparse.Namespace) -> int:
    from adapters import discord_adapter  # discord.py loads only when used

    if args.discord_action == "sync":
        count = await discord_adapter.sync_commands(settings.discord, args.guild)
        where = f"in guild {args.guild}" if args.guild else "globally"
        print(f"Registered {count} command (/calcifer) {where}.")
        return 0
    client_id = args.client_id or await discord_adapter.application_id(settings.discord)
    print(discord_adapter.invite_url(client_id, args.guild))
    names = ", ".join(discord_adapter.PERMISSION_NAMES.values())
    print(f"Permissions: {names} ({discord_adapter.PERMISSIONS.value}).")
    print(f"Scopes: {' '.join(discord_adapter.SCOPES)}.")
    return 0


async def _db_upgrade(settings: Settings) -> int:
    async with runtime.open_core(settings) as core:  # opening migrates
        current, head = await blocking(core.db.revision)
    print(f"Database schema at {current} (newest: {head}).")
    return 0


def _db_revision(message: str) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        db = Database(f"sqlite:///{scratch}/revision.db")
        try:
            written = db.new_revision(message)
        finally:
            db.dispose()
    for path in written:
        print(f"Wrote {path}: read it, then run the tests.")
    if not written:
        print("The models and the migrations agree: no migration needed.")
    return 0


# ----------------------------------------------------------------------------- probe


def _probe(args: argparse.Namespace) -> int:
    from integrations.monitoring import parse_probe_line

    lines = _probe_lines(args)
    if lines is None:
        return 2
    targets, problems = [], []
    for where, text in lines:
        try:
            target = parse_probe_line(text)
        except UsageError as exc:
            problems.append(f"{where}: {exc.message}")
            continue
        targets.append(dataclasses.replace(target, timeout_s=args.timeout))
    for problem in problems:  # all of them at once: fixing one at a time is tedious
        print(f"calcifer: {problem}", file=sys.stderr)
    if problems:
        print("calcifer: nothing was checked", file=sys.stderr)
        return 2
    if not targets:
        print(
            "calcifer: no targets: give them as arguments, or one per line with -f FILE "
            "(-f - reads stdin)",
            file=sys.stderr,
        )
        return 2
    setup_logging("WARNING")
    _raise_file_limit(args.concurrency)
    return _run_fast(_probe_sweep(targets, args.concurrency, args.json))


def _probe_lines(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    """(where, text) of every target line; None (message printed) when the file is unreadable."""
    found: list[tuple[str, str]] = []
    if args.file is not None:
        name = "stdin" if args.file == "-" else args.file
        try:
            if args.file == "-":
                text = sys.stdin.read()
            else:
                with open(args.file, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"calcifer: cannot read {name}: {getattr(exc, 'strerror', exc)}", file=sys.stderr)
            return None
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                found.append((f"{name} line {number}", line))
    found += [(f"argument {i}", t.strip()) for i, t in enumerate(args.targets, start=1)]
    return found


def _raise_file_limit(concurrency: int) -> None:
    # Each check in flight holds a socket; the usual soft limit of 1024 is below
    # what --concurrency may ask for, and the hard limit is usually far above.
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = concurrency + 64
        if soft != resource.RLIM_INFINITY and soft < wanted:
            top = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def _run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when the ``fast`` extra is installed, the collector tuned
    for a one-off burst of checks (see :func:`_tune_gc`)."""
    _tune_gc()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _tune_gc() -> None:
    """Spare a short-lived sweep most of the cyclic collector's work.

    Everything loaded so far (modules, the parsed targets) lives until exit: frozen,
    the collector never scans it again. The checks in flight make short-lived
    objects by the thousand; collecting the youngest generation every 10,000 (not
    700) allocations lets them die of their reference counts before a collection
    finds them alive and promotes them into the generations that are scanned whole.
    Measured: about 10 % of the CPU of a 5,000-target HTTP sweep. Cycles still go.
    """
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


async def _probe_sweep(targets: list[Any], concurrency: int, as_json: bool) -> int:
    from calcifer_bot import http
    from integrations.monitoring import MonitoringIntegration, Result

    width = min(60, max(len(t.display) for t in targets))
    progress = _Progress(len(targets), sys.stderr)
    ready: dict[int, Result] = {}
    printed = 0

    def line(index: int, result: Result) -> str:
        target = targets[index].display
        latency = None if result.latency_ms is None else round(result.latency_ms, 3)
        if as_json:
            record: dict[str, Any] = {
                "target": target,
                "up": result.ok,
                "latency_ms": latency,
                "error": result.error,
            }
            if result.warning:
                record["warning"] = result.warning
            return json.dumps(record)
        shown = "-" if latency is None else f"{latency:.1f} ms"
        note = result.error or result.warning or ""
        return (
            f"{target:<{width}}  {'up' if result.ok else 'down':<4}  {shown:>10}  {note}".rstrip()
        )

    def on_result(index: int, result: Result) -> None:
        nonlocal printed
        ready[index] = result
        # Printed in input order as soon as every earlier one is in: streams, yet stable.
        if printed in ready:
            progress.clear()
            while printed in ready:
                print(line(printed, ready.pop(printed)))
                printed += 1
            sys.stdout.flush()
        progress.update(printed + len(ready))

    monitoring = MonitoringIntegration()
    try:
        results = await monitoring.sweep(targets, concurrency, on_result)
    finally:
        progress.clear()
        await monitoring.close()
        await http.close()
    return 0 if all(r.ok for r in results) else 1


class _Progress:
    """A one-line progress bar on a terminal; silent when the stream is not one."""

    WIDTH = 30

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty()
        self.done = 0
        self.drawn_at = 0.0
        self.visible = False

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if not self.enabled or (now - self.drawn_at < 0.1 and done < self.total):
            return
        self.drawn_at = now
        filled = self.WIDTH * done // self.total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total}")
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        if self.visible:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.visible = False
