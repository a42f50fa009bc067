"""Per-request values that deeper layers may read (audit rows carry the request id)."""

from __future__ import annotations

import contextvars

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
