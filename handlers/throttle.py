"""Attempt limits in the kv store (shared by every instance), for sign-in and binding."""

from __future__ import annotations

import contextlib
import ipaddress

from core.errors import RateLimited
from core.kv import KVUnavailable
from core.runtime import runtime

HOUR = 3600.0


async def throttle(key: str, limit: int, window: float, message: str) -> None:
    """Sliding window: at most `limit` calls per `window` seconds, else 429 with Retry-After."""
    result = await runtime().kv.rate_limit(key, limit, window)
    if not result.allowed:
        raise RateLimited(message, retry_after=result.retry_after)


async def count_attempt(key: str, limit: int, window: float, message: str) -> None:
    """Count one attempt BEFORE it is made (so concurrent attempts count too); 429 once more
    than `limit` were made in the window that began with the first. Refund a successful
    attempt (`refund`), so only failures use up the allowance."""
    kv = runtime().kv
    try:
        if await kv.incr(key, ttl=window) > limit:
            raise RateLimited(message, retry_after=await kv.ttl(key) or window)
    except KVUnavailable:
        if not kv.may_fail_open():  # like kv.rate_limit: open for a bounded time, then 503
            raise




async def refund(window: float, *keys: str) -> None:
    kv = runtime().kv
    for key in keys:
        with contextlib.suppress(KVUnavailable):  # a lost refund only costs the user one try
            if await kv.incr(key, -1, ttl=window) <= 0:  # nothing left to count (or the key had expired)
                await kv.delete(key)


def address_key(client_ip: str) -> str:
    """The bucket a client address counts in: the address itself, but for IPv6 its /64 (one
    subscriber usually holds a whole /64, so single addresses would be free to rotate)."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:1.2.3.4 is 1.2.3.4
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
