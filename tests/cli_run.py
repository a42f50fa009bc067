"""Run `python -m core ...` as an operator would, against the test's database and kv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.config import Config

ROOT = Path(__file__).resolve().parent.parent


def run_cli(config: Config, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    env.update(
        QUDAO_DATABASE__URL=config.database.url,
        QUDAO_KV__URL=config.kv.url,
        QUDAO_KV__NAMESPACE=config.kv.namespace,
        QUDAO_LOGGING__LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
