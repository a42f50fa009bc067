"""The running process's shared services, installed once by the composition root.

Use-cases in `handlers/` read settings, the kv store, the clock and the event bus from
here instead of importing aiohttp or the app; tests install their own Runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.outage import Outage

if TYPE_CHECKING:
    from core.config import Config
    from core.kv import KV


@dataclass
class Runtime:
    config: Config
    kv: KV
    instance_id: str = "local"
    ports: dict[str, Any] = field(default_factory=dict)  # e.g. "notifier", "chat_pusher"
    db_outage: Outage = field(default_factory=lambda: Outage("database"))


_current: Runtime | None = None


def install(rt: Runtime | None) -> None:
    global _current
    _current = rt


def runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("no Runtime installed: create the app or call core.runtime.install()")
    return _current
