"""Domain errors with stable codes; adapters map them once (HTTP status + JSON, chat text)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a use-case may raise on purpose."""

    code = "domain_error"
    status = 400

    def __init__(self, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(DomainError):
    code, status = "validation_error", 400


class Unauthenticated(DomainError):
    code, status = "unauthenticated", 401


class Forbidden(DomainError):
    code, status = "forbidden", 403


class NotFound(DomainError):
    code, status = "not_found", 404


class InvalidState(DomainError):
    code, status = "invalid_state", 409


class InsufficientStock(DomainError):
    code, status = "insufficient_stock", 409


class CreditLimitExceeded(DomainError):
    code, status = "credit_limit_exceeded", 409


class LeadConflict(DomainError):
    code, status = "lead_conflict", 409


class RequestInProgress(DomainError):
    code, status = "request_in_progress", 409


class IdempotencyKeyReused(DomainError):
    code, status = "idempotency_key_reused", 422


class PayloadTooLarge(DomainError):
    code, status = "payload_too_large", 413


class RateLimited(DomainError):
    code, status = "rate_limited", 429

    def __init__(self, message: str = "", retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message or "too many requests", **kw)
        self.retry_after = max(1, int(retry_after + 0.999))


class Unavailable(DomainError):
    """A dependency (database, kv store) is down or too slow: retry later, not a bug."""

    code, status = "unavailable", 503

    def __init__(self, message: str = "", retry_after: float = 5.0, **kw: Any) -> None:
        super().__init__(message or "服务暂时不可用，请稍后重试", **kw)
        self.retry_after = max(1, int(retry_after + 0.999))


class ConfigError(Exception):
    """Bad configuration: a one-line message naming the key, never a traceback."""


class DatabaseUnusable(Exception):
    """The start-up check failed: the database cannot be opened, queried or written (exit 2)."""
