"""Configuration: TOML file (QUDAO_CONFIG, default ./config.toml) over built-in defaults,
then env overrides QUDAO_<SECTION>__<KEY>. Validated at start-up; errors name the key."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError

SECRET_WORDS = ("secret", "token", "aes_key", "password", "webhook")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    instance_id: str = ""
    access_log: bool = True  # one JSON line per request, buffered (core.access_log)
    # Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR blocks). Empty: the
    # client address is the TCP peer and X-Forwarded-For is ignored.
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR block") from None
        return v


class DatabaseConfig(Section):
    url: str = "sqlite://data/qudao.sqlite3"
    # PostgreSQL: server-side statement_timeout, and the client's bound on one call (a
    # frozen server never answers a cancel) = this + 1 s.
    statement_timeout_s: float = Field(15.0, gt=0, le=3600)
    connect_timeout_s: float = Field(5.0, gt=0, le=300)  # opening one connection
    probe_timeout_s: float = Field(2.0, gt=0, le=60)  # /readyz and the start-up check
    min_free_mb: int = Field(16, ge=0)  # SQLite: /readyz fails below this much free disk
    # PostgreSQL pool per process (`?minsize=` / `?maxsize=` in the URL win); a request waits
    # at most pool_acquire_timeout_s for a free connection (first come, first served), then
    # answers 503 `unavailable`.
    pool_min: int = Field(2, ge=0, le=1000)
    pool_max: int = Field(10, ge=1, le=1000)
    pool_acquire_timeout_s: float = Field(3.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgres://", "asyncpg://", "psycopg://")):
            raise ValueError("must start with sqlite:// or postgres://")
        return v


class KVConfig(Section):
    url: str = "memory://"
    namespace: str = "qudao"
    # Redis down: rate limits let calls through for this long after the outage started,
    # then rate-limited calls answer 503 `unavailable` (0 = never fail open).
    rate_fail_open_s: float = Field(300.0, ge=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://...")
        return v


class AuthConfig(Section):
    secret: str = "change-me-in-production"
    token_ttl_s: int = Field(604_800, ge=60)
    invite_ttl_s: int = Field(604_800, ge=60)


class LoggingConfig(Section):
    level: str = "INFO"
    format: str = Field("json", pattern="^(json|console)$")


class WeChatTemplates(Section):
    low_stock: str = ""
    contract_expiry: str = ""
    order_status: str = ""
    commission: str = ""
    statement: str = ""


class WeChatConfig(Section):
    appid: str = ""
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    previous_encoding_aes_key: str = ""
    api_base: str = "https://api.weixin.qq.com"
    templates: WeChatTemplates = WeChatTemplates()


class WeComConfig(Section):
    corp_id: str = ""
    agent_id: int = 0
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    api_base: str = "https://qyapi.weixin.qq.com"


class DingTalkRobot(Section):
    name: str
    webhook: str
    secret: str = ""


class DingTalkConfig(Section):
    app_key: str = ""
    app_secret: str = ""
    robot_code: str = ""
    agent_id: int = 0
    api_base: str = "https://api.dingtalk.com"
    oapi_base: str = "https://oapi.dingtalk.com"
    robots: list[DingTalkRobot] = []


JOB_NAMES = (
    "low_stock",
    "overstock",
    "contract_expiry",
    "receivables_overdue",
    "lead_expiry",
    "commission_statements",
    "order_completion",
    "outbox_drain",
    "daily_digest",
)


class JobsConfig(Section):
    low_stock: str = "cron:0 9 * * *"
    overstock: str = "cron:5 9 * * *"
    contract_expiry: str = "cron:0 8 * * *"
    receivables_overdue: str = "cron:30 8 * * *"
    lead_expiry: str = "cron:10 0 * * *"
    commission_statements: str = "cron:0 2 1 * *"
    order_completion: str = "cron:20 0 * * *"
    outbox_drain: str = "interval:3"
    daily_digest: str = "cron:0 18 * * *"

    @field_validator("*")
    @classmethod
    def _schedule(cls, v: str) -> str:
        kind, _, spec = v.partition(":")
        if kind == "interval" and spec.replace(".", "", 1).isdigit() and float(spec) > 0:
            return v
        if kind == "cron" and len(spec.split()) == 5:
            return v
        if kind == "off":
            return v
        raise ValueError('must be "cron:<5 fields>", "interval:<seconds>" or "off"')


class SchedulerConfig(Section):
    enabled: bool = True
    timezone: str = "Asia/Shanghai"
    jobs: JobsConfig = JobsConfig()


class AlertsConfig(Section):
    quiet_hours: str = Field("", pattern=r"^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
    low_stock_cover_days: int = Field(7, ge=0)
    contract_expiry_days: list[int] = [30, 7, 1]
    receivables_grace_days: int = Field(0, ge=0)
    robot_per_min: int = Field(20, ge=1)
    max_attempts: int = Field(8, ge=1)
    digest_threshold: int = Field(5, ge=1)
    retry_base_s: int = Field(30, ge=1)
    retry_max_s: int = Field(3600, ge=1)
    drain_batch: int = Field(200, ge=1, le=5000)
    drain_lease_s: int = Field(20, ge=10)  # renewed while a pass runs


class LeadsConfig(Section):
    protection_days: int = Field(90, ge=1)
    fuzzy_threshold: int = Field(90, ge=50, le=100)


class OrdersConfig(Section):
    return_days: int = Field(7, ge=0)
    auto_approve_max_amount: Decimal = Decimal("0.00")
    idempotency_ttl_s: int = Field(86_400, ge=86_400)


class LimitsConfig(Section):
    orders_per_user_per_min: int = Field(60, ge=1)
    chat_per_sender_per_min: int = Field(60, ge=1)  # 30 (DESIGN) was tripped by brisk normal use
    login_failures_before_lock: int = Field(5, ge=1)
    login_lock_s: int = Field(900, ge=1, le=86400)  # how long a locked username waits
    # One client address's failures against one username per login_lock_s; never more than
    # login_failures_before_lock - 1, so one address alone cannot lock an account.
    login_failures_per_ip: int = Field(4, ge=1)
    password_logins_per_ip_per_min: int = Field(30, ge=1)  # every attempt, any username
    # Calls to the WeChat / DingTalk login APIs (quota-limited), checked before the call.
    platform_logins_per_ip_per_min: int = Field(20, ge=1)
    platform_logins_per_min: int = Field(600, ge=1)  # all addresses together
    bind_failures_per_ticket: int = Field(5, ge=1)  # then the bind ticket is dropped
    bind_failures_per_account_per_hour: int = Field(10, ge=1)  # per platform account
    bind_failures_per_ip_per_hour: int = Field(30, ge=1)


class Config(Section):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    kv: KVConfig = KVConfig()
    auth: AuthConfig = AuthConfig()
    logging: LoggingConfig = LoggingConfig()
    wechat: WeChatConfig = WeChatConfig()
    wecom: WeComConfig = WeComConfig()
    dingtalk: DingTalkConfig = DingTalkConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    alerts: AlertsConfig = AlertsConfig()
    leads: LeadsConfig = LeadsConfig()
    orders: OrdersConfig = OrdersConfig()
    limits: LimitsConfig = LimitsConfig()

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with every secret masked: the only form that may be logged."""
        return _redact(self.model_dump(mode="json"))

    def with_overrides(self, data: dict[str, Any]) -> Config:
        """A copy with some keys replaced (nested dicts merge): handy for tests and tools."""
        return _validate(_merge(self.model_dump(mode="python"), data), source="overrides")


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    if value and isinstance(value, str) and any(w in key for w in SECRET_WORDS):
        return "***"
    if key == "url" and isinstance(value, str) and "@" in value:
        scheme, _, rest = value.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """QUDAO_<SECTION>__<KEY>[__<KEY>] -> nested dict. Values are read as TOML when they parse
    (numbers, booleans, arrays) and as plain strings otherwise."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("QUDAO_") or "__" not in name:
            continue
        path = [p.lower() for p in name[len("QUDAO_") :].split("__")]
        if not all(path):
            raise ConfigError(f"bad environment override {name}: empty section or key")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"bad environment override {name}: conflicts with another")
        node[path[-1]] = value
    return out


def _validate(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"unknown config key {where} (from {source})") from None
        raise ConfigError(f"bad config key {where}: {err['msg']} (from {source})") from None


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load, merge and validate. Raises ConfigError with a one-line message on any problem."""
    environ = dict(os.environ if environ is None else environ)
    explicit = path or environ.get("QUDAO_CONFIG")
    file = Path(explicit or "config.toml")
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {file} cannot be read: {exc.strerror}") from None
    elif explicit:
        raise ConfigError(f"config file {file} does not exist (named by QUDAO_CONFIG or --config)")
    overrides = _env_overrides(environ)
    base = str(file) if file.exists() else "built-in defaults"
    sources = f"{base} + environment" if overrides else base
    return _validate(_merge(data, overrides), source=sources)
