"""The one way blocking work (SQLite, GitPython, file I/O) leaves the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# A pool of its own: aiohttp resolves host names in the loop's default
# executor, and a burst of database or git work must not delay those lookups.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="calcifer-blocking")


async def blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in Calcifer's worker threads and await its result."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool, call)
