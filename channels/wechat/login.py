"""Mini-program login: `wx.login` code -> openid/unionid through `GET /sns/jscode2session`.

Implements `handlers.accounts.LoginProvider.miniapp_session`. The session_key never leaves
this function. Errcodes (PLATFORMS.md): 40029/40163 bad or used code -> 400, 45011 minute
quota -> 429, 40226 high-risk user -> 403, -1 busy / 5xx / timeout -> 503."""

from __future__ import annotations

from typing import Any

import aiohttp

from core.config import WeChatConfig
from core.errors import Forbidden, RateLimited, ValidationError
from core.logging import get_logger
from handlers.accounts import PlatformAccount, PlatformUnavailable

log = get_logger("qudao.wechat.login")
TIMEOUT = aiohttp.ClientTimeout(total=5, connect=3)


async def get_json(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> dict[str, Any]:
    """One platform call -> its JSON object; transport trouble is PlatformUnavailable."""
    try:
        async with http.request(method, url, timeout=TIMEOUT, **kw) as resp:
            if resp.status >= 500:
                raise PlatformUnavailable(f"登录平台暂时无法响应（HTTP {resp.status}），请稍后重试")
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("platform_call_failed", url=url.split("?", 1)[0], error=type(exc).__name__)
        raise PlatformUnavailable("连接不上登录平台，请稍后重试") from None
    if not isinstance(data, dict):
        raise PlatformUnavailable("登录平台返回了无法识别的内容，请稍后重试")
    return data


class MiniappLogin:
    def __init__(self, http: aiohttp.ClientSession, config: WeChatConfig) -> None:
        self.http = http
        self.config = config

    async def miniapp_session(self, code: str) -> PlatformAccount:
        if not self.config.appid or not self.config.secret:
            raise PlatformUnavailable("微信小程序登录尚未配置（wechat.appid / wechat.secret），请联系管理员")
        params = {
            "appid": self.config.appid,
            "secret": self.config.secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
        url = self.config.api_base.rstrip("/") + "/sns/jscode2session"
        data = await get_json(self.http, "GET", url, params=params)
        errcode = int(data.get("errcode") or 0)
        if errcode == 0 and data.get("openid"):
            return PlatformAccount("miniapp", str(data["openid"]), data.get("unionid") or None)
        raise login_error(errcode, str(data.get("errmsg", "")))


def login_error(errcode: int, errmsg: str) -> Exception:
    if errcode in (40029, 40163, 40125):
        return ValidationError("登录码无效、已过期或已使用，请重新登录", {"field": "code"})
    if errcode == 45011:
        return RateLimited("微信登录次数已达上限，请一分钟后再试", 60)
    if errcode == 40226:
        return Forbidden("微信拦截了这次登录（风险用户）")
    if errcode == -1:
        return PlatformUnavailable("微信系统繁忙，请稍后重试")
    log.warning("wechat_login_refused", errcode=errcode, errmsg=errmsg[:200])
    return PlatformUnavailable(f"微信拒绝了这次登录（错误码 {errcode}）")


__all__ = ["MiniappLogin", "get_json", "login_error"]
