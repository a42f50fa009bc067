"""Domain errors with stable codes; adapters map them once (HTTP status + JSON, chat text)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a use-case may raise on purpose."""

    code = "domain_error"
    status = 400
    default_message = "操作失败"  # people read `message` (Chinese); programs read `code`

    def __init__(self, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(DomainError):
    code, status = "validation_error", 400
    default_message = "输入有误"


class Unauthenticated(DomainError):
    code, status = "unauthenticated", 401
    default_message = "请先登录"


class Forbidden(DomainError):
    code, status = "forbidden", 403
    default_message = "您没有这个操作的权限"


class NotFound(DomainError):
    code, status = "not_found", 404
    default_message = "没有找到，或您无权查看"


class InvalidState(DomainError):
    code, status = "invalid_state", 409
    default_message = "当前状态不允许这个操作"


class InsufficientStock(DomainError):
    code, status = "insufficient_stock", 409
    default_message = "库存不足"


class CreditLimitExceeded(DomainError):
    code, status = "credit_limit_exceeded", 409
    default_message = "超出信用额度"


class LeadConflict(DomainError):
    code, status = "lead_conflict", 409
    default_message = "该客户已被报备，且在保护期内"


class RequestInProgress(DomainError):
    code, status = "request_in_progress", 409
    default_message = "上一个相同的请求还在处理中，请稍后再试"


class IdempotencyKeyReused(DomainError):
    code, status = "idempotency_key_reused", 422
    default_message = "这个幂等键（Idempotency-Key）已用于内容不同的请求"


class PayloadTooLarge(DomainError):
    code, status = "payload_too_large", 413
    default_message = "内容太大"


class RateLimited(DomainError):
    code, status = "rate_limited", 429
    default_message = "操作太频繁，请稍后再试"

    def __init__(self, message: str = "", retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = max(1, int(retry_after + 0.999))


class Unavailable(DomainError):
    """A dependency (database, kv store) is down or too slow: retry later, not a bug."""

    code, status = "unavailable", 503
    default_message = "服务暂时不可用，请稍后重试"

    def __init__(self, message: str = "", retry_after: float = 5.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = max(1, int(retry_after + 0.999))


class ConfigError(Exception):
    """Bad configuration: a one-line message naming the key, never a traceback."""


class DatabaseUnusable(Exception):
    """The start-up check failed: the database cannot be opened, queried or written (exit 2)."""
