"""Integration singletons: ``from integrations import git_manager, monitoring``.

Each integration is one module with one class. It is registered by one line in
:data:`REGISTRY` and created lazily, on first use after :func:`configure` has
handed over the loaded settings — importing this package reads no environment
and opens no connection.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from calcifer_bot.errors import CalciferError
from integrations.base import Connectivity, Integration, Reachability

if TYPE_CHECKING:
    from calcifer_bot.config import Settings

# singleton name -> "module:Class"
REGISTRY: dict[str, str] = {
    "git_manager": "integrations.git:GitIntegration",
    "monitoring": "integrations.monitoring:MonitoringIntegration",
    "notifications": "integrations.notifications:NotificationsIntegration",
}

_settings: Settings | None = None
_instances: dict[str, Integration] = {}


def configure(settings: Settings) -> None:
    """Hand over the settings; forgets instances made with earlier settings."""
    global _settings
    _settings = settings
    _instances.clear()


def integration_class(name: str) -> type[Integration]:
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get(name: str) -> Integration:
    if name not in REGISTRY:
        raise KeyError(f"no integration named {name!r}")
    if name not in _instances:
        if _settings is None:
            raise RuntimeError(f"integration {name!r} used before configuration was loaded")
        _instances[name] = integration_class(name).from_settings(_settings)
    return _instances[name]


async def check(name: str, seconds: float = 10.0) -> Connectivity:
    """``check_connectivity()`` of one integration, with a time limit."""
    cls = integration_class(name)
    missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
    if missing:
        hint = f"install calcifer[{cls.extra}]" if cls.extra else f"missing {', '.join(missing)}"
        return Connectivity(Reachability.DISABLED, hint)
    instance = get(name)
    if not instance.configured:
        return Connectivity(Reachability.NOT_CONFIGURED)
    try:
        return await asyncio.wait_for(instance.check_connectivity(), seconds)
    except TimeoutError:
        return Connectivity(Reachability.CANNOT_CONNECT, f"no answer within {seconds:g} s")
    except CalciferError as exc:  # translated at the integration's edge
        return Connectivity(Reachability.CANNOT_CONNECT, exc.message)


async def check_all(seconds: float = 10.0) -> dict[str, Connectivity]:
    names = sorted(REGISTRY)
    results = await asyncio.gather(*(check(n, seconds) for n in names))
    return dict(zip(names, results, strict=True))


async def close_all() -> None:
    for instance in list(_instances.values()):
        await instance.close()


def __getattr__(name: str) -> Any:
    if name in REGISTRY:
        return get(name)
    raise AttributeError(f"module 'integrations' has no attribute {name!r}")
