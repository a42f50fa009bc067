"""A small async HTTP load generator and server launcher shared by the benchmarks.

- `run_load(base_url, make_request, concurrency=16, duration=10, warmup=2)`: `concurrency`
  workers on one aiohttp session send requests back to back (closed loop: each waits for its
  answer before the next) for `warmup + duration` seconds; only answers that *finish* inside
  the measured window count. Returns throughput and latency percentiles.
- `serve(...)` (context manager): starts the Qudao app (or any ``python -m`` target) in
  subprocesses on a free port and waits for ``/readyz``. ``workers > 1`` starts that many
  processes sharing the port (SO_REUSEPORT), as several instances behind a balancer would.
- ``python -m bench.loadgen serve --port P [--reuse-port]``: the app under uvloop, config
  from the environment (``QUDAO_*``), without the scheduler and without access logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass
class LoadResult:
    seconds: float
    ok: int
    statuses: Counter[int]
    latencies_ms: list[float]
    errors: Counter[str]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(p / 100 * len(data)))]

    def summary(self) -> str:
        p50 = statistics.median(self.latencies_ms) if self.latencies_ms else 0.0
        return (
            f"{self.rps:,.0f} req/s ok ({self.ok} in {self.seconds:.1f}s), p50 {p50:.1f} ms, "
            f"p99 {self.pct(99):.1f} ms, statuses {dict(self.statuses)}"
            + (f", errors {dict(self.errors)}" if self.errors else "")
        )


async def run_load(
    base_url: str,
    make_request: Callable[[int, int], Req],
    *,
    concurrency: int = 16,
    duration: float = 10.0,
    warmup: float = 2.0,
    ok_statuses: tuple[int, ...] = (200, 201),
) -> LoadResult:
    """`make_request(worker, seq)` builds each request (seq counts per worker)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    end = measure_from + duration
    result = LoadResult(duration, 0, Counter(), [], Counter())
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)

    async def worker(w: int, session: aiohttp.ClientSession) -> None:
        seq = 0
        while loop.time() < end:
            req = make_request(w, seq)
            seq += 1
            t0 = loop.time()
            try:
                async with session.request(
                    req.method, base_url + req.path, headers=req.headers, json=req.json
                ) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                if loop.time() >= measure_from:
                    result.errors[type(exc).__name__] += 1
                continue
            t1 = loop.time()
            if measure_from <= t1 <= end:
                result.statuses[status] += 1
                if status in ok_statuses:
                    result.ok += 1
                    result.latencies_ms.append((t1 - t0) * 1000)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(w, session) for w in range(concurrency)))
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"server exited with {p.returncode} before becoming ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready at {url} after {timeout}s")


@contextlib.contextmanager
def serve(
    env: dict[str, str],
    *,
    workers: int = 1,
    target: tuple[str, ...] = ("bench.loadgen", "serve"),
    ready_path: str = "/readyz",
) -> Iterator[str]:
    """Start `python -m <target> --port P` (x workers, sharing the port) and yield the base URL."""
    port = free_port()
    full_env = {**os.environ, **env}
    cmd = [sys.executable, "-m", *target, "--port", str(port)]
    if workers > 1:
        cmd.append("--reuse-port")
    procs = [
        subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(workers)
    ]
    try:
        wait_ready(f"http://127.0.0.1:{port}{ready_path}", procs)
        yield f"http://127.0.0.1:{port}"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                _, err = p.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            if p.returncode not in (0, -15) and err:
                print(err.decode(errors="replace")[-2000:], file=sys.stderr)


def _serve_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.loadgen serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true")
    args = parser.parse_args(argv)
    import uvloop
    from aiohttp import web

    from core.app import create_app
    from core.config import load_config
    from core.logging import setup_logging

    config = load_config()
    setup_logging(config.logging.level, config.logging.format)
    app = create_app(config, scheduler=False)
    profile = os.environ.get("BENCH_PROFILE")  # a file to write cProfile stats to, on exit
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

        async def dump(_: web.Application) -> None:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{os.getpid()}")

        app.on_shutdown.append(dump)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        reuse_port=args.reuse_port or None,
        loop=uvloop.new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(_serve_main(sys.argv[2:]))
    print("usage: python -m bench.loadgen serve --port P [--reuse-port]", file=sys.stderr)
    sys.exit(2)
