"""Password hashing with argon2id (slow on purpose); verification never leaks timing.

Parameters are OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): each hash holds 19 MiB
while it runs, so at most MAX_CONCURRENT_HASHES run at once per event loop (a burst of logins
queues instead of multiplying memory), always off the event loop. Hashes made with other
parameters still verify (argon2 stores them in the hash) and are replaced on the next login."""

from __future__ import annotations

import asyncio
import weakref

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# A real hash (of a password nobody uses) to verify against when the user does not exist, so
# timing reveals nothing. A constant: hashing it at import would cost a hash's memory at start.
_DUMMY = "$argon2id$v=19$m=19456,t=2,p=1$wpKuTCVbcIKEUGFrEUEn4A$TqNoSXlO++PXaDinghIW6xqNd4GO8zqox6ewCfc8gTo"

MAX_CONCURRENT_HASHES = 2
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def hash_password(password: str) -> str:
    """Blocking: CLI, demo data and tests. Request handlers use `hash_password_async`."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
    return gate


async def hash_password_async(password: str) -> str:
    async with _gate():
        return await asyncio.to_thread(hash_password, password)


def _check(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    if not verify_password(password_hash, password):
        return False, None
    assert password_hash is not None
    return True, hash_password(password) if _hasher.check_needs_rehash(password_hash) else None


async def check_password(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(right?, a new hash when the stored one has outdated parameters)."""
    async with _gate():
        return await asyncio.to_thread(_check, password_hash, password)
