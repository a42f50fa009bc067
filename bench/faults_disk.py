"""`make faults`: the embedded default (SQLite) on a read-only mount and on a full disk.

This phase runs in its own mount namespace (`unshare -m`, started by bench.faults) with the
data folder on a small tmpfs, so the experiments can remount and fill it without touching
the machine:
- read-only: a read-only bind mount over the folder (`mount --bind -o ro`), removed by
  `umount`; while it is on, a second `qudao serve` on the same file must refuse
  to start (exit 2, one line) within seconds;
- full disk: a filler file takes every free byte; removing it is the repair.
Each fault must turn `/readyz` to 503 within a few seconds, requests must never hang, and
`/readyz` must be 200 again soon after the repair. Needs root (mount namespaces); otherwise
the rows say "skipped"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.faults import Service
from bench.loadgen import free_port

TMPFS_MB = 48
READY_WITHIN_S = 8.0


def available() -> str | None:
    """None when the experiments can run, else why not."""
    if os.geteuid() != 0:
        return "needs root for a mount namespace"
    for tool in ("unshare", "mount", "umount", "dd"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return None if probe.returncode == 0 else "unshare -m refused (no mount namespaces here)"


def mount_tmpfs(folder: Path) -> None:
    """Run inside the phase's own mount namespace (`unshare -m`): a small tmpfs over `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(folder)], check=True)


class SqliteService(Service):
    """`bench.loadgen serve` on the SQLite file `db_file` (on the tmpfs)."""

    def __init__(self, db_file: Path, env: dict[str, str], log: Path) -> None:
        super().__init__(env | {"QUDAO_DATABASE__URL": f"sqlite://{db_file}"}, log)
        self.dir = db_file.parent

    # --- faults and repairs (run in a thread by Load.burst) ---

    def read_only(self) -> None:
        subprocess.run(["mount", "--bind", "-o", "ro", str(self.dir), str(self.dir)], check=True)

    def writable(self) -> None:
        subprocess.run(["umount", str(self.dir)], check=True)

    def fill(self) -> None:
        # dd stops at ENOSPC (exit 1): that is the point
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={self.dir / 'filler'}", "bs=1M"], capture_output=True, check=False
        )

    def unfill(self) -> None:
        (self.dir / "filler").unlink(missing_ok=True)

    def restart_refused(self) -> tuple[int | None, float, str]:
        """A second `qudao serve` on the same file: (exit code, seconds, stderr's last line).
        It must exit 2 at once, not hang."""
        cmd = [sys.executable, "-m", "core", "serve", "--port", str(free_port())]
        started = time.monotonic()
        try:
            done = subprocess.run(
                cmd, env={**os.environ, **self.env}, capture_output=True, timeout=30, check=False
            )
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - started, "no exit within 30 s"
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return done.returncode, time.monotonic() - started, lines[-1] if lines else ""


def ready_status(base: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def wait_ready_status(base: str, want: int, within: float = READY_WITHIN_S) -> float | None:
    """Seconds until /readyz answers `want`, or None if it did not within `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if ready_status(base) == want:
            return time.monotonic() - started
        time.sleep(0.2)
    return None
