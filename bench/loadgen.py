"""A small async HTTP load generator and server launcher shared by the benchmarks.

- `run_load(base_url, make_request, concurrency=16, duration=10, warmup=2)`: `concurrency`
  workers, each on its own keep-alive connection, send requests back to back (closed loop: each waits for its
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
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


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
    """`make_request(worker, seq)` builds each request (seq counts per worker). Each worker
    keeps one HTTP/1.1 keep-alive connection (reopened if the server closes it)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    end = measure_from + duration
    result = LoadResult(duration, 0, Counter(), [], Counter())
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def worker(w: int) -> None:
        seq = 0
        conn: _Conn | None = None
        while loop.time() < end:
            req = make_request(w, seq)
            seq += 1
            t0 = loop.time()
            try:
                if conn is None:
                    conn = _Conn(*await asyncio.open_connection(host, port))
                async with asyncio.timeout(60):  # no task per request, unlike wait_for
                    status, keep = await conn.exchange(_encode(req, parts.netloc))
            except _FAILURES as exc:
                if conn is not None:
                    conn.close()
                    conn = None
                if loop.time() >= measure_from:
                    result.errors[type(exc).__name__] += 1
                continue
            if not keep:
                conn.close()
                conn = None
            t1 = loop.time()
            if measure_from <= t1 <= end:
                result.statuses[status] += 1
                if status in ok_statuses:
                    result.ok += 1
                    result.latencies_ms.append((t1 - t0) * 1000)
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return result


# What a broken connection, a stuck server or a garbled answer raise: counted, then reconnect.
_FAILURES = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


def drive(load: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run a `run_load(...)` to completion on uvloop: the client's own CPU per request is
    taken from the machine the server and database share, so it is kept as small as it can be."""
    import uvloop

    return uvloop.run(load)


def _encode(req: Req, host: str) -> bytes:
    body = b"" if req.json is None else json.dumps(req.json, ensure_ascii=False).encode()
    lines = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    if req.json is not None:
        lines.append("Content-Type: application/json")
    if body or req.method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    """One keep-alive connection speaking just enough HTTP/1.1 for the benches: the load
    generator shares the machine with the server and the database, so it must cost little
    CPU per request, as pgbench's C client does on the other side of a ratio (an aiohttp
    client cost ~0.3 ms per order request, a sixth of the 2-core machine at those rates).
    No trailers, no HEAD: the benches send neither."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send one request, read its whole answer: (status, connection reusable)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.decode("latin-1").partition("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length, keep, chunked = 0, True, False
        for line in header_block.split("\r\n"):
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                keep = value.strip().lower() != "close"
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status, keep

    def close(self) -> None:
        self.writer.close()


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
    from aiohttp import web

    from core.app import create_app, run
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
    run(app, host="127.0.0.1", port=args.port, reuse_port=args.reuse_port)  # as `qudao serve`
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(_serve_main(sys.argv[2:]))
    print("usage: python -m bench.loadgen serve --port P [--reuse-port]", file=sys.stderr)
    sys.exit(2)
