"""Conversation state per sender (multi-turn intents: pick from a list, 下单 -> 确认), kept in
the kv store so any instance can continue a conversation, and forgotten after a while."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from core.kv import KV, KVUnavailable

STATE_TTL_S = 600.0  # 10 minutes of silence ends a conversation
UNAVAILABLE_TEXT = (
    "缓存服务暂时不可用，需要多步对话的操作（选择编号、下单确认等）暂时无法继续，请稍后再试；"
    "单条指令（如“查库存 商品全名”）仍可使用。"
)


@dataclass(frozen=True, slots=True)
class State:
    kind: str  # e.g. "pick:stock", "order:items", "order:confirm"
    conv_id: str  # stable through one conversation: idempotency keys hang off it
    data: dict[str, Any] = field(default_factory=dict)


class Conversation:
    """The state of one sender on one channel. Frozen key: `chat:conv:<channel>:<sender>`."""

    def __init__(self, kv: KV, channel: str, sender: str) -> None:
        self._kv = kv
        self.key = f"chat:conv:{channel}:{sender}"

    async def get(self) -> State | None:
        """The current step; None also while the kv store is down (state lives only there)."""
        try:
            data = await self._kv.get_json(self.key)
        except KVUnavailable:
            return None
        if not isinstance(data, dict) or "kind" not in data:
            return None
        return State(kind=data["kind"], conv_id=data.get("conv_id", ""), data=data.get("data") or {})

    async def set(
        self, kind: str, data: dict[str, Any] | None = None, *, conv_id: str | None = None
    ) -> State:
        """Store the next step; a new conversation id unless one is carried over."""
        state = State(kind=kind, conv_id=conv_id or secrets.token_hex(8), data=data or {})
        body = {"kind": state.kind, "conv_id": state.conv_id, "data": state.data}
        try:
            await self._kv.set_json(self.key, body, ttl=STATE_TTL_S)
        except KVUnavailable:
            # the one thing that truly needs the shared store: say so, clearly
            raise KVUnavailable(UNAVAILABLE_TEXT) from None
        return state

    async def clear(self) -> None:
        try:
            await self._kv.delete(self.key)
        except KVUnavailable:
            pass  # it expires by itself (STATE_TTL_S)
