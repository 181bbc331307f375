"""Calcifer's HTTP server: health and readiness now; adapters add their routes."""

from __future__ import annotations

import asyncio

from aiohttp import web
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.exc import SQLAlchemyError

from calcifer_bot.db import Database

DB_KEY = web.AppKey("db", Database)
SCHEDULER_KEY = web.AppKey("scheduler", BaseScheduler)


def build_app(db: Database, scheduler: BaseScheduler) -> web.Application:
    app = web.Application()
    app[DB_KEY] = db
    app[SCHEDULER_KEY] = scheduler
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await request.app[DB_KEY].ping()
        checks["database"] = "ok"
    except (TimeoutError, SQLAlchemyError) as exc:
        checks["database"] = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    checks["scheduler"] = "ok" if request.app[SCHEDULER_KEY].running else "stopped"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
