"""How fast does a command go through the core?

Prints, per command, the median and p95 latency of ``Core.dispatch`` on a
SQLite file (role lookup, handler, audit row included), beside the parse-only
baseline measured in the same process (tokenize, resolve, bind), and the ratio.

    python benchmarks/bench_dispatch.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time

from calcifer_bot.aio import blocking
from calcifer_bot.config import load_settings
from calcifer_bot.core import Core
from calcifer_bot.db import Database
from calcifer_bot.parser import tokenize
from calcifer_bot.reply import Command
from calcifer_bot.roles import Role

COMMANDS = ["help", "whoami", "status", "help role grant", "frobnicate"]


def percentile(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/bench.db"
        db = Database(url)
        await blocking(db.upgrade)
        core = Core(load_settings(environ={"CALCIFER_DATABASE_URL": url}), db)
        print(f"{'command':<18}{'dispatch p50':>14}{'p95':>10}{'parse p50':>12}{'ratio':>8}")
        for text in COMMANDS:
            full, parse = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                await core.dispatch(Command("slack", "U1", "C1", text))
                full.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                found = core.registry.find(tokenize(text))
                if found:
                    found[0].bind(found[1])
                else:
                    core.registry.unknown(tokenize(text), Role.VIEWER)
                parse.append(time.perf_counter() - t0)
            p50, base = statistics.median(full), statistics.median(parse)
            print(
                f"{text:<18}{p50 * 1e3:>11.2f} ms{percentile(full, 0.95) * 1e3:>7.2f} ms"
                f"{base * 1e6:>9.1f} µs{p50 / base:>7.0f}x"
            )
        db.dispose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
