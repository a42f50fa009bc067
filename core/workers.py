"""`qudao serve --workers N`: the parent re-executes `qudao serve --worker-index i` N times (each
child opens its own database/kv connections; no fork after pools exist), all binding the same
port with SO_REUSEPORT; the scheduler runs only in worker 0. SIGTERM/SIGINT to the parent stops
every child (SIGTERM, then SIGKILL after a grace period) and the parent exits 0. A child that
dies unexpectedly is restarted after a backoff (1 s doubling to 30 s, reset after 60 s up)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

GRACE_S = 10.0


def _spawn(
    i: int, n: int, host: str, port: int, config_path: str | None, no_scheduler: bool
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "core"]
    if config_path:
        cmd += ["--config", config_path]
    cmd += ["serve", "--host", host, "--port", str(port), "--workers", str(n), "--worker-index", str(i)]
    if no_scheduler:
        cmd.append("--no-scheduler")
    return subprocess.Popen(cmd)


def supervise(n: int, host: str, port: int, *, config_path: str | None, no_scheduler: bool) -> int:
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    procs = [_spawn(i, n, host, port, config_path, no_scheduler) for i in range(n)]
    started = [time.monotonic()] * n
    backoff = [1.0] * n
    due: list[float | None] = [None] * n
    while not stop:
        time.sleep(0.2)
        if stop:  # a Ctrl-C also reaches the children: do not report them as crashed
            break
        now = time.monotonic()
        for i, p in enumerate(procs):
            if due[i] is not None:
                if now >= due[i]:
                    procs[i], started[i], due[i] = (
                        _spawn(i, n, host, port, config_path, no_scheduler),
                        now,
                        None,
                    )
                continue
            if p.poll() is None:
                if now - started[i] > 60:
                    backoff[i] = 1.0
                continue
            print(
                f"qudao: worker {i} exited ({p.returncode}); restarting in {backoff[i]:g}s",
                file=sys.stderr,
                flush=True,
            )
            due[i] = now + backoff[i]
            backoff[i] = min(backoff[i] * 2, 30.0)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return 0
