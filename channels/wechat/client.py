"""WeChat outbound calls (aiohttp): subscribe messages, OA template and customer-service messages.

Every call goes through the shared TokenProvider (refresh once on 40001/42001, never loop).
Subscribe message values must fit WeChat's per-type limits or the send fails with 47003:
`subscribe_data()` trims them, typed by the key's prefix (`thing1` -> thing, ...).

Template convention: a kind's subscribe template is expected to have `thing1` (title),
`thing2` (detail) and `time3` (time) unless the notification payload carries its own
`wechat_data` mapping (e.g. {"character_string1": "SO202611230001", "phrase2": "已发货"}).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import aiohttp

    from channels.tokens import TokenProvider
    from core.config import Config

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
ELLIPSIS = "…"

# Maximum lengths per subscribe-message value type (characters).
LIMITS = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phrase": 5,
    "phone_number": 17,
    "car_number": 8,
}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def field_type(key: str) -> str:
    """`thing12` -> `thing`, `character_string3` -> `character_string`."""
    return key.rstrip("0123456789")


def _cut(text: str, limit: int, ellipsis: bool = True) -> str:
    """Keep both ends ("库存不足：海螺牌…42.5 袋装"): two products that differ only at the end
    (袋装/散装, DN50/DN65) must stay distinguishable."""
    if len(text) <= limit:
        return text
    if not ellipsis or limit < 3:
        return text[:limit]
    tail = (limit - 1) // 3
    return text[: limit - 1 - tail] + ELLIPSIS + text[len(text) - tail :]


def _as_datetime(value: Any) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            try:
                return date.fromisoformat(text)
            except ValueError:
                return None
    return None


def _fmt_time(value: Any, with_time: bool) -> str:
    dt = _as_datetime(value)
    if dt is None:
        return str(value)[:20]
    if isinstance(dt, datetime):
        if dt.tzinfo is not None:
            dt = dt.astimezone(BUSINESS_TZ)
        day = f"{dt.year}年{dt.month:02d}月{dt.day:02d}日"
        return f"{day} {dt.hour:02d}:{dt.minute:02d}" if with_time else day
    return f"{dt.year}年{dt.month:02d}月{dt.day:02d}日"


def _amount(value: Any) -> str:
    """Currency symbol + at most 10 digits (cents dropped first if needed). A value that is not
    an amount, or too big to show, is passed on unchanged: WeChat refuses it (47003 -> failed,
    with the reason, still in the inbox) rather than us showing a wrong number."""
    text = str(value).strip()
    symbol = "¥"
    if text and text[0] in "¥$€£":
        symbol, text = text[0], text[1:]
    text = text.removesuffix("元").replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    digits = f"{amount:.2f}"
    if sum(c.isdigit() for c in digits) > 10:  # too many digits: drop the cents first
        digits = f"{amount:.0f}"
    if sum(c.isdigit() for c in digits) > 10:
        return str(value)
    return f"{symbol}{digits}"


def trim_value(key: str, value: Any) -> str:
    """A value that fits the subscribe-message type named by `key`'s prefix."""
    kind = field_type(key)
    if kind in ("time", "date"):
        return _fmt_time(value, with_time=kind == "time")
    if kind == "amount":
        return _amount(value)
    text = unicodedata.normalize("NFC", str(value)).replace("\n", " ").strip()
    if kind == "thing":
        return _cut(text, LIMITS["thing"])
    if kind == "number":
        digits = "".join(c for c in text if c.isdigit() or c == ".")
        return digits[: LIMITS["number"]] or "0"
    if kind == "letter":
        return "".join(c for c in text if c.isascii() and c.isalpha())[: LIMITS["letter"]]
    if kind == "symbol":
        return "".join(c for c in text if not c.isalnum() and not c.isspace())[: LIMITS["symbol"]]
    if kind == "character_string":
        kept = "".join(c for c in text if c.isascii() and c.isprintable())
        return kept[: LIMITS["character_string"]]
    if kind == "phrase":
        return "".join(_CJK.findall(text))[: LIMITS["phrase"]]
    if kind == "name":
        limit = 10 if _CJK.search(text) else 20
        return text[:limit]
    if kind == "phone_number":
        return (
            "".join(c for c in text if c.isdigit() or c in "+-() ").strip()[: LIMITS["phone_number"]].strip()
        )
    if kind == "car_number":
        return text.replace(" ", "")[: LIMITS["car_number"]]
    return _cut(text, 20)


def subscribe_data(fields: dict[str, Any]) -> dict[str, dict[str, str]]:
    """`{"thing1": "..."} -> {"thing1": {"value": trimmed}}`."""
    return {k: {"value": trim_value(k, v)} for k, v in fields.items()}


def default_fields(title: str, body: str, at: datetime | None) -> dict[str, Any]:
    return {"thing1": title, "thing2": body, "time3": at or datetime.now(BUSINESS_TZ)}


class WeChatClient:
    def __init__(self, config: Config, http: aiohttp.ClientSession, tokens: TokenProvider) -> None:
        self.config = config
        self.http = http
        self.tokens = tokens
        self.base = config.wechat.api_base.rstrip("/")

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.base + path

        async def call(token: str) -> Any:
            async with self.http.post(url, params={"access_token": token}, json=body) as resp:
                if resp.status >= 500:
                    return {"errcode": -1, "errmsg": f"HTTP {resp.status}", "_http_status": resp.status}
                return await resp.json(content_type=None)

        return await self.tokens.call("wechat", call)

    async def send_subscribe(
        self,
        touser: str,
        template_id: str,
        fields: dict[str, Any],
        *,
        page: str | None = None,
        state: str | None = None,
    ) -> Any:
        """POST /cgi-bin/message/subscribe/send (mini-program; needs a recorded grant)."""
        body: dict[str, Any] = {
            "touser": touser,
            "template_id": template_id,
            "data": subscribe_data(fields),
            "lang": "zh_CN",
        }
        if page:
            body["page"] = page
        if state:
            body["miniprogram_state"] = state
        return await self._post("/cgi-bin/message/subscribe/send", body)

    async def send_template(
        self, touser: str, template_id: str, fields: dict[str, Any], *, url: str | None = None
    ) -> Any:
        """POST /cgi-bin/message/template/send (Official Account template message)."""
        body: dict[str, Any] = {
            "touser": touser,
            "template_id": template_id,
            "data": {k: {"value": str(v)} for k, v in fields.items()},
        }
        if url:
            body["url"] = url
        return await self._post("/cgi-bin/message/template/send", body)

    async def send_custom_text(self, touser: str, content: str) -> Any:
        """POST /cgi-bin/message/custom/send (customer-service text, within 48 h of a user message)."""
        body = {"touser": touser, "msgtype": "text", "text": {"content": content}}
        return await self._post("/cgi-bin/message/custom/send", body)
