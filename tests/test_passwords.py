"""Password hashing: argon2id at the OWASP parameters, old hashes upgraded on login, a bound
on concurrent hashes (memory), no hashing at import."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from argon2 import PasswordHasher

from handlers import passwords
from models.base import UserRole
from models.user import User
from tests import factories
from tests.bola import cached_hash
from tests.factories import PASSWORD, make_user

OWASP = "m=19456,t=2,p=1"


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


async def _login(client: Any, username: str, password: str = PASSWORD) -> int:
    resp = await client.post("/api/v1/auth/password-login", json={"username": username, "password": password})
    return resp.status


def test_new_hashes_use_the_owasp_parameters() -> None:
    h = passwords.hash_password("s3cret-pw")
    assert f"$argon2id$v=19${OWASP}$" in h
    assert passwords.verify_password(h, "s3cret-pw") and not passwords.verify_password(h, "other")


async def test_an_old_hash_still_verifies_and_is_upgraded_on_login(client) -> None:
    user = await make_user(UserRole.ADMIN)
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(PASSWORD)
    await User.filter(id=user.id).update(password_hash=old)
    assert await _login(client, user.username, "wrong") == 401
    assert (await User.get(id=user.id)).password_hash == old  # a failed login changes nothing
    assert await _login(client, user.username) == 200
    upgraded = (await User.get(id=user.id)).password_hash
    assert upgraded != old and OWASP in upgraded and passwords.verify_password(upgraded, PASSWORD)
    assert await _login(client, user.username) == 200


async def test_concurrent_logins_hash_at_most_a_few_at_a_time(client, monkeypatch) -> None:
    users = [await make_user(UserRole.ADMIN) for _ in range(6)]
    real = passwords._hasher
    lock = threading.Lock()
    running = peak = 0

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def verify(self, hash: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                time.sleep(0.05)
                return real.verify(hash, password)
            finally:
                with lock:
                    running -= 1

    monkeypatch.setattr(passwords, "_hasher", Counting())
    statuses = await asyncio.gather(*(_login(client, u.username) for u in users))
    assert statuses == [200] * 6
    assert 1 <= peak <= 2, peak


def test_import_hashes_nothing_and_unknown_users_still_fail() -> None:
    """The dummy hash for unknown users is a constant: importing costs no argon2 memory."""
    code = (
        "import argon2\n"
        "def boom(*a, **k):\n    raise SystemExit('hashed at import')\n"
        "argon2.PasswordHasher.hash = boom\n"
        "from handlers import passwords\n"
        "assert passwords.verify_password(None, 'qudao-dummy-password') is False\n"
        "assert passwords.verify_password(None, 'x') is False\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
