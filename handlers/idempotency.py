"""Idempotency keys (as Stripe does them), per user and key, kept >= `orders.idempotency_ttl_s`.

How a keyed write uses this module (see `handlers.ordering.admit_order`):

1. `check_key` validates the header (missing or malformed -> 400 naming ``Idempotency-Key``)
   and `request_hash` fingerprints the *validated* body (canonical JSON, so key order and
   whitespace do not matter).
2. Inside the write's own transaction, `claim` inserts the record first. On PostgreSQL a
   concurrent request with the same key blocks on the unique index until the first one
   commits or rolls back; SQLite runs one write transaction at a time. Either way the
   duplicate *waits* for the first request instead of racing it. The write ends with
   `complete`, which stores the response in the same transaction: the record, the order,
   its lines and movements commit together or not at all.
3. When `claim` finds the key taken, the caller leaves its transaction and calls `resolve`:
   same fingerprint and done -> the stored response is replayed (same status and body);
   different fingerprint -> 422 ``idempotency_key_reused``; a record older than its expiry
   is deleted and the request runs anew.

Only successful responses are stored. A request refused by a business rule (insufficient
stock, credit limit, bad input) rolls its claim back, so retrying it with the same key runs
it again — once stock or credit allows it, it succeeds exactly once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from core.clock import now
from core.errors import IdempotencyKeyReused, RequestInProgress, ValidationError
from core.runtime import runtime
from models.base import IdempotencyState
from models.order import IdempotencyRecord

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


class KeyTaken(Exception):
    """Raised inside the write's transaction so it rolls back; resolve it outside."""


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: Any


def check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise ValidationError(f"{HEADER}: header is required", {"field": HEADER})
    key = key.strip()
    if not _KEY.match(key):
        raise ValidationError(f"{HEADER}: 1-255 printable ASCII characters without spaces", {"field": HEADER})
    return key


def request_hash(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(user_id: int, key: str, fingerprint: str) -> IdempotencyRecord:
    """Insert the record in the caller's transaction, or raise KeyTaken."""
    ttl = runtime().config.orders.idempotency_ttl_s
    at = now()
    try:
        return await IdempotencyRecord.create(
            user_id=user_id,
            key=key,
            request_hash=fingerprint,
            state=IdempotencyState.IN_PROGRESS,
            created_at=at,
            expires_at=at + timedelta(seconds=ttl),
        )
    except IntegrityError:
        raise KeyTaken(key) from None


async def complete(rec: IdempotencyRecord, status_code: int, body: Any) -> None:
    """Store the response. It is kept as JSON *text*: PostgreSQL's jsonb would reorder the
    keys, and a replay must be the same bytes."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    stored = json.dumps({"text": text}, ensure_ascii=False, separators=(",", ":"))
    db = IdempotencyRecord._meta.db
    pg = db.capabilities.dialect == "postgres"
    sql = (
        "UPDATE idempotency_record SET state = $1, status_code = $2, response = $3 WHERE id = $4"
        if pg
        else "UPDATE idempotency_record SET state = ?, status_code = ?, response = ? WHERE id = ?"
    )
    await db.execute_query(sql, [IdempotencyState.DONE.value, status_code, stored, rec.id])


async def resolve(user_id: int, key: str, fingerprint: str) -> Stored | None:
    """After KeyTaken: the response to replay, or None when the key is free again (the other
    request rolled back, or the record had expired and was removed)."""
    rec = await IdempotencyRecord.get_or_none(user_id=user_id, key=key)
    if rec is None:
        return None
    if rec.expires_at <= now():
        await IdempotencyRecord.filter(id=rec.id, expires_at__lte=now()).delete()
        return None
    if rec.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body", {"field": HEADER}
        )
    if rec.state != IdempotencyState.DONE:
        raise RequestInProgress("a request with this Idempotency-Key is still running")
    stored = rec.response
    body = json.loads(stored["text"]) if isinstance(stored, dict) and "text" in stored else stored
    return Stored(status_code=rec.status_code or 200, body=body)


async def purge_expired() -> int:
    """Delete expired records (for a housekeeping job); returns how many."""
    return await IdempotencyRecord.filter(expires_at__lte=now()).delete()
