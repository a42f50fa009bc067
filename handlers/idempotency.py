"""Idempotency keys (as Stripe does them), per user and key, kept >= `orders.idempotency_ttl_s`.

How a keyed write uses this module (see `handlers.admission.admit_order`):

1. `check_key` validates the header (missing or malformed -> 400 naming ``Idempotency-Key``)
   and `request_hash` fingerprints the *validated* body (canonical JSON, so key order and
   whitespace do not matter).
2. The write runs in its own transaction and ends with `store`, which inserts the record with
   the response: the record, the order, its lines and movements commit together or not at
   all. The insert is insert-or-ignore on the unique (user, key): on PostgreSQL a concurrent
   request with the same key waits there until the first one commits or rolls back; SQLite
   runs one write transaction at a time. Only one of them can write the record, so only one
   order is ever created for a key. (The key is written last rather than first so that the
   common case — a fresh key — costs one statement, not two.)
3. A write refused by a business rule (insufficient stock, credit limit, bad input) first
   calls `claim` in the same transaction, which also waits for a concurrent holder of the key:
   a duplicate refused only because the first request already took the stock must answer
   with the first request's response, not with its own refusal.
4. When `store` or `claim` finds the key taken, the caller leaves its transaction (rolling its
   own work back) and calls `resolve`: same fingerprint and done -> the stored response is
   replayed (same status and body); different fingerprint -> 422 ``idempotency_key_reused``;
   a record older than its expiry is deleted and the request runs anew.
5. After the commit, `remember` leaves a hint in the kv store (as long as the record lives);
   a request whose key has the hint (`completed`) goes straight to `resolve`, so a client's
   retry of a finished write replays without redoing it (no order number drawn, no locks
   taken). The hint is only a shortcut: without it (kv flushed, a crash before it was set)
   the insert-or-ignore above still decides — so a kv error while reading or writing the
   hint (Redis down) is logged and ignored, never the request's answer (the order is
   committed by then).

Only successful responses are stored. A refused request rolls its claim back, so retrying it
with the same key runs it again — once stock or credit allows it, it succeeds exactly once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.clock import now
from core.errors import IdempotencyKeyReused, RequestInProgress, ValidationError
from core.kv import KVUnavailable
from core.logging import get_logger
from core.runtime import runtime
from handlers.sql import insert_many
from models.base import IdempotencyState
from models.order import IdempotencyRecord

log = get_logger("qudao.idempotency")

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


class KeyTaken(Exception):
    """Raised inside the write's transaction so it rolls back; resolve it outside."""


@dataclass(frozen=True)
class Stored:
    status_code: int
    text: str  # the response body, byte for byte as first sent


def check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise ValidationError(f"{HEADER}: 必填（请求头）", {"field": HEADER})
    key = key.strip()
    if not _KEY.match(key):
        raise ValidationError(f"{HEADER}: 应为 1-255 个可打印 ASCII 字符，不含空格", {"field": HEADER})
    return key


def request_hash(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hint(user_id: int, key: str) -> str:
    return f"idem:done:{user_id}:{key}"


async def remember(user_id: int, key: str) -> None:
    """After the commit: this user's key is done (a hint for `completed`). Best effort: the
    write has committed, so a kv failure here must not turn its answer into an error."""
    try:
        await runtime().kv.set(_hint(user_id, key), "1", ttl=runtime().config.orders.idempotency_ttl_s)
    except KVUnavailable:
        pass  # the kv outage is logged once by the store itself
    except Exception as exc:
        log.warning("idempotency_hint_not_set", user_id=user_id, error=f"{type(exc).__name__}: {exc}")


async def completed(user_id: int, key: str) -> bool:
    """The hint, if the kv store can say; False (ask the database) when it cannot."""
    try:
        return await runtime().kv.get(_hint(user_id, key)) is not None
    except KVUnavailable:
        return False
    except Exception as exc:
        log.warning("idempotency_hint_unreadable", user_id=user_id, error=f"{type(exc).__name__}: {exc}")
        return False


async def claim(user_id: int, key: str, fingerprint: str) -> None:
    """Hold the key in the caller's transaction (rolled back with it), or raise KeyTaken."""
    await _insert(user_id, key, fingerprint, IdempotencyState.IN_PROGRESS, None, None)


async def store(user_id: int, key: str, fingerprint: str, status_code: int, text: str) -> None:
    """Write the key with its response (the JSON body as sent) in the caller's transaction, or
    raise KeyTaken. The body is kept as *text* inside the jsonb column: PostgreSQL's jsonb
    would reorder the keys, and a replay must be the same bytes."""
    await _insert(user_id, key, fingerprint, IdempotencyState.DONE, status_code, {"text": text})


async def _insert(
    user_id: int, key: str, fingerprint: str, state: IdempotencyState, status_code: int | None, response: Any
) -> None:
    # Insert-or-ignore: on PostgreSQL a concurrent insert of the same key makes this wait
    # until that transaction ends; no row back means the key is taken.
    at = now()
    ttl = runtime().config.orders.idempotency_ttl_s
    written = await insert_many(
        IdempotencyRecord,
        [
            {
                "user_id": user_id,
                "key": key,
                "request_hash": fingerprint,
                "state": state,
                "status_code": status_code,
                "response": response,
                "created_at": at,
                "expires_at": at + timedelta(seconds=ttl),
            }
        ],
        returning="id",
        ignore_conflict_on='"user_id", "key"',
    )
    if not written:
        raise KeyTaken(key)


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
            "这个幂等键（Idempotency-Key）已用于内容不同的请求，新订单请换一个", {"field": HEADER}
        )
    if rec.state != IdempotencyState.DONE:
        raise RequestInProgress("同一笔订单还在提交中，请稍后再试")
    stored = rec.response
    text = stored["text"] if isinstance(stored, dict) and "text" in stored else json.dumps(stored)
    return Stored(status_code=rec.status_code or 200, text=text)


async def purge_expired() -> int:
    """Delete expired records (for a housekeeping job); returns how many."""
    return await IdempotencyRecord.filter(expires_at__lte=now()).delete()
