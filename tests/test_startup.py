"""A lean start: `qudao serve` builds the app without loading what only some requests need
(xlsx, pinyin dictionaries, test tools)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import aiohttp

# openpyxl: only ?format=xlsx and imports; pypinyin (its phrase dictionary is ~45 MB): only
# catalogue writes and chat product search; the rest are test tools.
LAZY = ("openpyxl", "pypinyin", "schemathesis", "hypothesis", "pytest")


def test_the_app_factory_imports_no_heavy_optional_modules() -> None:
    code = (
        "import sys\n"
        "from core.config import Config\n"
        "from core.app import create_app\n"
        "import core.cli\n"
        "core.cli._load_command_modules()\n"
        "create_app(Config())\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


_USERS = """
import asyncio, sys
import core.cli as cli
from core.config import Config
from core.db import migrate_db
from handlers.users import create_admin

async def main(url):
    await migrate_db(url)
    async with cli._db(Config().with_overrides({"database": {"url": url}})):
        for i in range(10):
            await create_admin(f"admin{i}", "pw-123456", f"admin{i}")

asyncio.run(main(sys.argv[1]))
"""


def test_serve_stays_lean_at_start_and_under_a_login_burst(tmp_path) -> None:
    """A real `qudao serve` (SQLite, memory kv): peak RSS under 100 MiB after start and under
    200 MiB after 10 concurrent password logins (it was 144 and 529 MiB)."""
    url = f"sqlite://{tmp_path}/q.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    env |= {"QUDAO_DATABASE__URL": url, "QUDAO_KV__URL": "memory://", "QUDAO_LOGGING__LEVEL": "WARNING"}
    subprocess.run([sys.executable, "-c", _USERS, url], env=env, cwd=tmp_path, check=True, timeout=120)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = [sys.executable, "-m", "core", "serve", "--port", str(port), "--no-scheduler"]
    proc = subprocess.Popen(
        serve, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        started, statuses, after = asyncio.run(_burst(proc.pid, f"http://127.0.0.1:{port}"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert statuses == [401, 200] * 5
    assert started < 100, started
    assert after < 200, after


async def _burst(pid: int, base: str) -> tuple[float, list[int], float]:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        started = _hwm_mib(pid)

        async def login(i: int) -> int:
            body = {"username": f"admin{i}", "password": "pw-123456" if i % 2 else "wrong"}
            async with http.post(f"{base}/api/v1/auth/password-login", json=body) as r:
                return r.status

        statuses = list(await asyncio.gather(*(login(i) for i in range(10))))
        return started, statuses, _hwm_mib(pid)
