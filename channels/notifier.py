"""The Notifier port's implementation: one outbound message -> the right platform call.

Errcodes are classified here, once, for all adapters:
- 0 -> sent (WeCom partial success: a recipient listed in `invaliduser` -> failed);
- permanent (bad openid/template/data, no grant, banned, invalid users, robot sign) -> failed;
- token (40001/40014/42001) — the TokenProvider already refreshed and retried once; still
  failing -> retry later;
- quotas and throttles -> retry after the platform's own wait (45009 daily quota: tomorrow,
  45011 minute quota: next minute, 43108: a few seconds, 130101 robot throttled: 10 minutes);
- -1, 5xx, timeouts and anything unrecognised -> retry with backoff (dead after N);
- an ambiguous failure (timeout or dropped connection after the request went out) on a
  channel without an idempotency key (WeChat subscribe/template) -> unknown, never re-sent.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp

from channels.dingtalk.client import DingTalkClient, stamp
from channels.tokens import TOKEN_ERRCODES, TokenError, TokenProvider, errcode_of
from channels.wechat.client import WeChatClient, default_fields
from channels.wecom.client import WeComClient
from core.clock import now as clock_now
from core.logging import get_logger
from handlers.outbox import NON_IDEMPOTENT, OutboundMessage, SendResult

if TYPE_CHECKING:
    from core.config import Config
    from core.kv import KV

log = get_logger("qudao.notifier")

PERMANENT = frozenset(
    {
        40003,  # invalid openid
        40037,  # invalid template_id
        41030,  # invalid page
        43101,  # user refused / no subscription grant left
        43107,  # subscribe message banned for this account
        45168,  # sensitive words
        47003,  # template data does not fit (errmsg names the field)
        45015,  # OA customer-service message outside the 48 h window
        40013,  # invalid appid / corpid
        81013,  # WeCom: every recipient invalid
        310000,  # DingTalk robot: sign mismatch or keyword missing
        300001,  # DingTalk sessionWebhook expired (we never use it for alerts)
        400002,  # DingTalk: bad parameter
        33012,  # DingTalk: invalid userid list
    }
)
MINUTE_QUOTA = 45011
DAILY_QUOTA = 45009
USER_BUSY = 43108
ROBOT_THROTTLED = 130101


def seconds_until_tomorrow(at: datetime, tz: ZoneInfo) -> float:
    """Until 00:05 tomorrow in the business timezone (the daily quota resets at midnight)."""
    local = at.astimezone(tz)
    resume = datetime.combine(local.date() + timedelta(days=1), time(0, 5), tzinfo=tz)
    return max(60.0, (resume - local).total_seconds())


def classify(data: Any, channel: str, tz: ZoneInfo, *, account: str | None = None) -> SendResult:
    """A platform JSON answer -> SendResult."""
    code = errcode_of(data)
    msg = str(data.get("errmsg", "")) if isinstance(data, dict) else "answer is not a JSON object"
    reason = f"{code} {msg}".strip()
    if code == 0:
        invalid = str(data.get("invaliduser") or "") if isinstance(data, dict) else ""
        if invalid:
            if account and account in invalid.split("|"):
                return SendResult("failed", f"81013 recipient {account} invalid (invaliduser)")
            return SendResult.sent(note=f"invaliduser: {invalid}")
        return SendResult.sent()
    if code in PERMANENT:
        return SendResult("failed", reason)
    if code in TOKEN_ERRCODES:
        return SendResult("retry", f"{reason} (still rejected after one token refresh)")
    if code == DAILY_QUOTA:
        log.warning("platform_daily_quota", channel=channel)
        return SendResult("retry", reason, retry_after_s=seconds_until_tomorrow(clock_now(), tz))
    if code == MINUTE_QUOTA:
        return SendResult("retry", reason, retry_after_s=61 - clock_now().second)
    if code == USER_BUSY:
        return SendResult("retry", reason, retry_after_s=3)
    if code == ROBOT_THROTTLED:
        return SendResult("retry", reason, retry_after_s=600, robot_throttled=True)
    return SendResult("retry", reason)


def _text(n: OutboundMessage) -> str:
    return f"{n.title}\n{n.body}\n{stamp(n.id, n.created_at)}"


class ChannelNotifier:
    """Dispatches each OutboundMessage to the platform client of its channel."""

    def __init__(self, config: Config, http: aiohttp.ClientSession, kv: KV) -> None:
        self.config = config
        self.tokens = TokenProvider(config, http, kv)
        self.wechat = WeChatClient(config, http, self.tokens)
        self.wecom = WeComClient(config, http, self.tokens)
        self.dingtalk = DingTalkClient(config, http, self.tokens)
        self.tz = ZoneInfo(config.scheduler.timezone)

    async def send(self, n: OutboundMessage) -> SendResult:
        try:
            data = await self._call(n)
        except _Refused as exc:
            return SendResult("failed", str(exc))
        except TokenError as exc:
            return SendResult("retry" if exc.retryable else "failed", str(exc))
        except aiohttp.ClientConnectorError as exc:  # never reached the platform
            return SendResult("retry", f"cannot connect: {exc.__class__.__name__}")
        except (TimeoutError, aiohttp.ClientError) as exc:  # the request may have gone out
            what = f"ambiguous: {exc.__class__.__name__} after sending"
            if n.channel in NON_IDEMPOTENT:
                return SendResult("unknown", f"{what}; not re-sent (no idempotency key)")
            return SendResult("retry", what)
        return classify(data, n.channel, self.tz, account=n.to)

    async def _call(self, n: OutboundMessage) -> Any:
        if n.channel == "wechat_subscribe":
            if not n.template_id:
                raise _Refused(f"no subscribe template configured for kind {n.kind}")
            fields = n.payload.get("wechat_data") or default_fields(n.title, n.body, n.created_at)
            return await self.wechat.send_subscribe(
                n.to,
                n.template_id,
                fields,
                page=n.payload.get("page"),
                state=n.payload.get("miniprogram_state"),
            )
        if n.channel == "wechat_template":
            tid = n.payload.get("oa_template_id") or n.template_id
            if not tid:
                # No template for this kind: a customer-service text (a rep who chats with the
                # OA is inside the 48 h window; outside it WeChat answers 45015 -> failed).
                return await self.wechat.send_custom_text(n.to, _text(n))
            fields = n.payload.get("wechat_data") or {
                "first": n.title,
                "keyword1": n.body,
                "remark": stamp(n.id, n.created_at),
            }
            return await self.wechat.send_template(n.to, tid, fields, url=n.payload.get("url"))
        if n.channel == "wecom":
            return await self.wecom.send_text(n.to, _text(n))
        if n.channel == "dingtalk_work":
            return await self.dingtalk.work_notify([n.to], _text(n))
        if n.channel == "dingtalk_robot":
            robot = self.dingtalk.robot(n.to)
            if robot is None:
                raise _Refused(f"no DingTalk robot named {n.to!r} in [[dingtalk.robots]]")
            text = f"### {n.title}\n\n{n.body}\n\n{stamp(n.id, n.created_at)}"
            return await self.dingtalk.robot_send(robot, title=n.title, text=text, msg_uuid=str(n.id))
        raise _Refused(f"channel {n.channel} cannot push")


class _Refused(Exception):
    """We will not even try (misconfiguration): a permanent failure with this reason."""


def build_notifier(config: Config, http: aiohttp.ClientSession, kv: KV) -> ChannelNotifier:
    return ChannelNotifier(config, http, kv)
