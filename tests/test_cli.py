"""The CLI fails in one line with a non-zero exit on bad config or an unreachable database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUDAO_")}
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def _one_line(p: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_missing_config_file(tmp_path: Path) -> None:
    p = run("migrate", env={"QUDAO_CONFIG": str(tmp_path / "nope.toml")})
    assert p.returncode == 2
    assert "nope.toml does not exist" in _one_line(p)


def test_malformed_config_file(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[database\n", encoding="utf-8")
    p = run("--config", str(f), "migrate")
    assert p.returncode == 2
    assert "not valid TOML" in _one_line(p)


def test_unknown_env_key(tmp_path: Path) -> None:
    p = run("migrate", env={"QUDAO_DATABASE__URI": "x"}, cwd=tmp_path)
    assert p.returncode == 2
    assert "unknown config key database.uri" in _one_line(p)


def test_unreachable_database(tmp_path: Path) -> None:
    p = run("migrate", env={"QUDAO_DATABASE__URL": "postgres://nobody@127.0.0.1:1/none"}, cwd=tmp_path)
    assert p.returncode == 1
    assert "127.0.0.1" in _one_line(p) or "connect" in _one_line(p)


def test_migrate_twice_and_seed_twice_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    # The default relative path, in a folder that does not exist yet (a fresh clone has no data/).
    env = {"QUDAO_DATABASE__URL": "sqlite://data/q.sqlite3", "QUDAO_LOGGING__LEVEL": "WARNING"}
    for _ in range(2):
        p = run("migrate", env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    first = run("seed-demo", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run("seed-demo", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout  # same totals: nothing duplicated
    p = run("create-admin", "--username", "root", "--password", "short", env=env, cwd=tmp_path)
    assert p.returncode == 1 and "至少 8" in _one_line(p)
    p = run("create-admin", "--username", "root", "--password", "long-enough-pw", env=env, cwd=tmp_path)
    assert p.returncode == 0 and "created admin root" in p.stdout
