"""Calcifer's HTTP server: health, readiness, push heartbeats; adapters add their routes."""

from __future__ import annotations

import asyncio

from aiohttp import web
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.exc import SQLAlchemyError

from calcifer_bot.core import Core

CORE_KEY = web.AppKey("core", Core)
SCHEDULER_KEY = web.AppKey("scheduler", BaseScheduler)


def build_app(core: Core, scheduler: BaseScheduler) -> web.Application:
    app = web.Application()
    app[CORE_KEY] = core
    app[SCHEDULER_KEY] = scheduler
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_)
    app.router.add_route("GET", "/push/{token}", push)
    app.router.add_route("POST", "/push/{token}", push)
    return app


async def metrics_(request: web.Request) -> web.Response:
    from calcifer_bot import metrics  # prometheus_client is slow to import; few runs scrape

    body = await metrics.render(request.app[CORE_KEY])
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def push(request: web.Request) -> web.Response:
    """A heartbeat: an application or a cron job says it is alive."""
    name = await request.app[CORE_KEY].scheduler.push(request.match_info["token"])
    if name is None:
        return web.json_response({"ok": False, "error": "unknown push token"}, status=404)
    return web.json_response({"ok": True, "endpoint": name})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await request.app[CORE_KEY].db.ping()
        checks["database"] = "ok"
    except (TimeoutError, SQLAlchemyError) as exc:
        checks["database"] = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    checks["scheduler"] = "ok" if request.app[SCHEDULER_KEY].running else "stopped"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
