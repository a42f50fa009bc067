"""Config: defaults equal config.example.toml, env overrides, clear one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.config import Config, load_config
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_builtin_defaults_equal_example_file() -> None:
    example = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    assert Config.model_validate(example) == Config()
    assert load_config(environ={"QUDAO_CONFIG": str(ROOT / "config.example.toml")}) == Config()


def test_env_overrides_nested_keys_and_types() -> None:
    cfg = load_config(
        environ={
            "QUDAO_DATABASE__URL": "postgres://u:p@db:5432/qudao?maxsize=20",
            "QUDAO_SERVER__PORT": "9000",
            "QUDAO_WECHAT__TEMPLATES__LOW_STOCK": "tpl-1",
            "QUDAO_ALERTS__CONTRACT_EXPIRY_DAYS": "[60, 30]",
            "QUDAO_SCHEDULER__ENABLED": "false",
        }
    )
    assert cfg.database.url.startswith("postgres://")
    assert cfg.server.port == 9000
    assert cfg.wechat.templates.low_stock == "tpl-1"
    assert cfg.alerts.contract_expiry_days == [60, 30]
    assert cfg.scheduler.enabled is False


def test_file_then_env_precedence(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 7000\nhost = "0.0.0.0"\n', encoding="utf-8")
    cfg = load_config(f, environ={"QUDAO_SERVER__PORT": "7001"})
    assert (cfg.server.host, cfg.server.port) == ("0.0.0.0", 7001)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"QUDAO_NOPE__X": "1"}, "unknown config key nope"),
        ({"QUDAO_SERVER__PROT": "1"}, "unknown config key server.prot"),
        ({"QUDAO_SERVER__PORT": "eighty"}, "bad config key server.port"),
        ({"QUDAO_KV__URL": "memcached://x"}, "bad config key kv.url"),
        ({"QUDAO_ALERTS__QUIET_HOURS": "late"}, "bad config key alerts.quiet_hours"),
        ({"QUDAO_SCHEDULER__JOBS__LOW_STOCK": "sometimes"}, "scheduler.jobs.low_stock"),
    ],
)
def test_bad_keys_named_in_one_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(environ=env)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"QUDAO_CONFIG": str(tmp_path / "absent.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})


def test_secrets_are_redacted() -> None:
    cfg = Config().with_overrides(
        {
            "auth": {"secret": "s3cret"},
            "wechat": {"secret": "wxsecret", "encoding_aes_key": "k" * 43, "token": "tok"},
            "database": {"url": "postgres://qudao:pw@db.internal:5432/qudao"},
            "dingtalk": {
                "robots": [{"name": "ops", "webhook": "https://x/robot?access_token=t", "secret": "SEC1"}]
            },
        }
    )
    text = str(cfg.redacted())
    for secret in ("s3cret", "wxsecret", "k" * 43, "'tok'", "pw@", "SEC1", "access_token=t"):
        assert secret not in text
    assert "db.internal:5432/qudao" in text
