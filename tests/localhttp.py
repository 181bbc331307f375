"""The one way a test starts an aiohttp server: 127.0.0.1, a port the kernel picks."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve(app: web.Application, **runner: Any) -> tuple[web.AppRunner, str]:
    """Start ``app``; the runner (``await runner.cleanup()`` stops it) and its base URL.

    ``runner`` goes to :class:`aiohttp.web.AppRunner` (``shutdown_timeout=…``).
    """
    started = web.AppRunner(app, **runner)
    await started.setup()
    await web.TCPSite(started, "127.0.0.1", 0).start()
    return started, f"http://127.0.0.1:{started.addresses[0][1]}"
