"""`qudao serve --workers N`: N re-executed processes share the port; the parent restarts a
child that dies and stops them all on SIGTERM; SQLite refuses more than one worker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, db_url: str, kv_url: str, port: int) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QUDAO_CONFIG": str(cfg),
        "QUDAO_DATABASE__URL": db_url,
        "QUDAO_KV__URL": kv_url,
        "QUDAO_SERVER__PORT": str(port),
        "QUDAO_LOGGING__LEVEL": "ERROR",
    }


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


async def _healthz_burst(port: int, n: int = 200) -> list[int]:
    async with aiohttp.ClientSession() as s:

        async def one() -> int:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                return r.status

        return await asyncio.gather(*(one() for _ in range(n)))


async def _wait_up(port: int, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, "server did not come up"
        await asyncio.sleep(0.1)


def test_embedded_refuses_several_workers(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite://{tmp_path / 'db.sqlite3'}", "memory://", _port())
    proc = subprocess.run(
        [sys.executable, "-m", "core", "serve", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip() == "qudao: config error: --workers > 1 needs PostgreSQL (SQLite has one writer)"
    )


def test_workers_out_of_range_is_a_config_error(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite://{tmp_path / 'db.sqlite3'}", "memory://", _port())
    proc = subprocess.run(
        [sys.executable, "-m", "core", "serve", "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--workers must be 1.." in proc.stderr, proc.stderr


def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "core", "serve", "--workers", "2"], env=env)


@pytest.mark.server_backend
async def test_two_workers_share_the_port_restart_and_stop(tmp_path: Path, backend) -> None:  # type: ignore[no-untyped-def]
    port = _port()
    env = _env(tmp_path, backend.db_url, backend.kv_url, port)
    parent = _start(env)
    try:
        await _wait_up(port)
        kids = _children(parent.pid)
        assert len(kids) == 2, kids
        assert set(await _healthz_burst(port)) == {200}
        os.kill(kids[0], signal.SIGKILL)
        await asyncio.sleep(0.5)  # the dead worker's listening socket is closed by the kernel
        assert set(await _healthz_burst(port)) == {200}  # the other worker answers
        deadline = time.monotonic() + 10
        while True:
            now = _children(parent.pid)
            if len(now) == 2 and kids[0] not in now:
                break
            assert time.monotonic() < deadline, now
            await asyncio.sleep(0.2)
        await _wait_up(port)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(10) == 0
        for pid in now:  # the parent waited for every child before exiting
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        for pid in _children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
