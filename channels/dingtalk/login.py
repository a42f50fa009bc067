"""DingTalk micro-app login: auth code -> userid.

`POST {oapi_base}/topapi/v2/user/getuserinfo?access_token=` with `{code}` gives
`result.userid`. The app access token comes from `channels.tokens.TokenProvider` (the same
cached, lock-refreshed token the push adapters use; refetched once when DingTalk calls it
invalid). Implements `handlers.accounts.LoginProvider.dingtalk_user`."""

from __future__ import annotations

import aiohttp

from channels.tokens import TokenError, TokenProvider
from channels.wechat.login import get_json
from core.config import DingTalkConfig
from core.errors import RateLimited, ValidationError
from core.logging import get_logger
from handlers.accounts import PlatformAccount, PlatformUnavailable

log = get_logger("qudao.dingtalk.login")
BAD_CODE = (40078, 40079, 60020)


class DingTalkLogin:
    def __init__(self, http: aiohttp.ClientSession, config: DingTalkConfig, tokens: TokenProvider) -> None:
        self.http = http
        self.config = config
        self.tokens = tokens
        self.base = config.oapi_base.rstrip("/")

    async def dingtalk_user(self, auth_code: str) -> PlatformAccount:
        if not self.config.app_key or not self.config.app_secret:
            raise PlatformUnavailable("钉钉登录尚未配置（dingtalk.app_key / app_secret），请联系管理员")
        try:
            data = await self.tokens.call("dingtalk", lambda token: self._getuserinfo(token, auth_code))
        except TokenError as exc:
            log.warning("dingtalk_gettoken_failed", errcode=exc.errcode)
            raise PlatformUnavailable("钉钉登录暂时不可用，请稍后重试") from None
        errcode = int(data.get("errcode") or 0)
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        if errcode == 0 and result.get("userid"):
            return PlatformAccount(
                "dingtalk", str(result["userid"]), result.get("unionid") or None, result.get("name")
            )
        if errcode in BAD_CODE:
            raise ValidationError("auth_code: 登录码无效或已过期，请重新登录", {"field": "auth_code"})
        if errcode in (90018, 90002, 90006):
            raise RateLimited("钉钉登录次数已达上限，请稍后再试", 10)
        log.warning("dingtalk_login_refused", errcode=errcode, errmsg=str(data.get("errmsg", ""))[:200])
        raise PlatformUnavailable(f"钉钉拒绝了这次登录（错误码 {errcode}）")

    async def _getuserinfo(self, token: str, code: str) -> dict:  # type: ignore[type-arg]
        url = self.base + "/topapi/v2/user/getuserinfo"
        return await get_json(self.http, "POST", url, params={"access_token": token}, json={"code": code})
