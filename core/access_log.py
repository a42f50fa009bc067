"""The HTTP access log, kept cheap: one JSON line per request rendered with orjson (no
structlog processor chain), appended to an in-memory buffer and written in batches — when
the buffer passes `FLUSH_BYTES`, `FLUSH_AFTER_S` after its first line, and when the app stops.
`[server] access_log = false` switches it off (the request metrics stay). A log level above
INFO (`[logging] level`) switches it off too, as it did when it went through structlog."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

FLUSH_BYTES = 64 * 1024
FLUSH_AFTER_S = 0.5


class AccessLog:
    def __init__(self, *, enabled: bool = True, level: str = "INFO", stream: IO[bytes] | None = None) -> None:
        self.enabled = enabled and logging.getLevelName(level.upper()) <= logging.INFO
        self.stream: IO[bytes] = stream if stream is not None else sys.stderr.buffer
        self._buffer: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def write(self, **entry: Any) -> None:
        if not self.enabled:
            return
        line = orjson.dumps(
            {
                "event": "http_request",
                "level": "info",
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                **entry,
            }
        )
        self._buffer.append(line + b"\n")
        self._size += len(line) + 1
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self.flush)
            except RuntimeError:  # no loop: write now
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not break requests
            pass
