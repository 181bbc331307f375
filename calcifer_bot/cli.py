"""``calcifer``: run, chat, config check, db upgrade.

Exit status: 0 success, 1 a command or check failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence

import integrations
from adapters.console import ConsoleAdapter
from calcifer_bot import __version__, runtime
from calcifer_bot.aio import blocking
from calcifer_bot.config import Settings, load_settings
from calcifer_bot.db import Database
from calcifer_bot.errors import CalciferError
from calcifer_bot.logs import setup_logging


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

    db = sub.add_parser("db", help="database")
    db_sub = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", parents=[common], help="apply schema migrations")
    revision = db_sub.add_parser(
        "revision", parents=[common], help="(developers) generate a migration from models.py"
    )
    revision.add_argument("message", help="what the migration does")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    print("Integrations:" if results else "Integrations: none installed")
    for name, result in results.items():
        print(f"  {name:<22} {result}")
    skip = (integrations.Reachability.NOT_CONFIGURED, integrations.Reachability.DISABLED)
    return 0 if all(r or r.state in skip for r in results.values()) else 1


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
