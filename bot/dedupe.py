"""Delivery semantics: a message delivered N times is acted on once (invariant 5), and a slow
one is answered within the platform's deadline and finished with a pushed message.

Per dedupe key, the kv store holds `{"state": "processing"}` (claimed with SET NX by the
first delivery), then `{"state": "done", "via": "passive" | "push", "reply": {...}}`:

- the first delivery runs the dispatcher in a tracked background task and waits up to
  `DEADLINE_S` for it: done in time -> the reply goes in the HTTP response (passive);
  otherwise -> "success" now, and the reply is pushed when ready (customer-service message,
  WeCom app message, DingTalk sessionWebhook);
- a redelivery (WeChat retries after 5 s, 3 times; a replayed DingTalk callback) waits up
  to `RETRY_WAIT_S` for the first: a passive reply is answered again, verbatim (the first
  response may have been lost); a pushed one, or one still running, is acknowledged only.

Whether a reply is passive or pushed is decided at one instant on the event loop (the
task records its result, or the waiter marks it deferred, whichever happens first), so a
reply is never both pushed and answered, nor neither.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.dispatcher import Dispatcher
from bot.message import ACK, Message, Reply
from core.kv import KV, KVUnavailable
from core.logging import get_logger
from core.runtime import runtime

log = get_logger("qudao.bot.delivery")

DEADLINE_S = 4.0  # WeChat and WeCom drop the request at 5 s
RETRY_WAIT_S = 3.0
DEDUPE_TTL_S = 2 * 86_400.0  # > DingTalk's ±1 h signature window, > any platform retry
_POLL_S = 0.05

PushFn = Callable[[Message, Reply], Awaitable[None]]


def dedupe_kv_key(message: Message) -> str:
    digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:40]
    return f"chat:seen:{message.channel}:{digest}"


class BackgroundTasks:
    """Keeps a reference to every task it starts (so none is garbage-collected mid-flight)
    and drains them on shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Let running work finish (up to `timeout`), then cancel what is left."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


@dataclass
class _Job:
    result: Reply | None = None
    deferred: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class Delivery:
    def __init__(self, dispatcher: Dispatcher, tasks: BackgroundTasks) -> None:
        self.dispatcher = dispatcher
        self.tasks = tasks

    async def deliver(self, message: Message, push: PushFn) -> Reply:
        kv = runtime().kv
        key = dedupe_kv_key(message)
        try:
            fresh = await kv.set_json(key, {"state": "processing"}, ttl=DEDUPE_TTL_S, nx=True)
        except KVUnavailable:
            # The shared store is down: dedupe within this instance (a platform retries to
            # the same address) rather than refuse every message.
            kv = kv.local
            fresh = await kv.set_json(key, {"state": "processing"}, ttl=DEDUPE_TTL_S, nx=True)
        if not fresh:
            return await self._redelivery(kv, key, message)
        job = _Job()
        self.tasks.spawn(self._run(message, key, job, push, kv))
        try:
            await asyncio.wait_for(job.ready.wait(), DEADLINE_S)
        except TimeoutError:
            pass
        if job.result is not None:
            return job.result
        job.deferred = True
        log.info("bot_reply_deferred", channel=message.channel, msg_id=message.msg_id)
        return ACK

    async def _run(self, message: Message, key: str, job: _Job, push: PushFn, kv: KV) -> None:
        reply = await self.dispatcher.handle(message)
        via = "push" if job.deferred else "passive"
        if not job.deferred:
            job.result = reply  # from here on the waiter answers with it
            job.ready.set()
        record = {"state": "done", "via": via, "reply": reply.to_json()}
        try:
            await kv.set_json(key, record, ttl=DEDUPE_TTL_S)
        except KVUnavailable:
            await kv.local.set_json(key, record, ttl=DEDUPE_TTL_S)  # the outage is logged once
        except Exception:
            log.exception("bot_dedupe_store_failed", channel=message.channel, msg_id=message.msg_id)
        if via == "push" and not reply.silent:
            try:
                await push(message, reply)
            except Exception:
                log.exception("bot_push_failed", channel=message.channel, msg_id=message.msg_id)

    async def _redelivery(self, kv: KV, key: str, message: Message) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_WAIT_S
        while True:
            try:
                record = await kv.get_json(key)
            except KVUnavailable:
                return ACK  # the first delivery answers (or pushes) the reply
            if isinstance(record, dict) and record.get("state") == "done":
                if record.get("via") == "passive":
                    return Reply.from_json(record.get("reply") or {})
                return ACK
            if loop.time() >= deadline:
                log.info("bot_redelivery_while_processing", channel=message.channel, msg_id=message.msg_id)
                return ACK
            await asyncio.sleep(_POLL_S)
