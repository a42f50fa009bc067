"""DingTalk micro-app login: auth code -> userid.

`GET {oapi_base}/gettoken?appkey&appsecret` gives the app access token (cached in the kv
store for every instance, refreshed under a lock, dropped and refetched once when DingTalk
calls it invalid), then `POST {oapi_base}/topapi/v2/user/getuserinfo?access_token=` with
`{code}` gives `result.userid`. Implements `handlers.accounts.LoginProvider.dingtalk_user`."""

from __future__ import annotations

import aiohttp

from channels.wechat.login import get_json
from core.config import DingTalkConfig
from core.errors import RateLimited, ValidationError
from core.kv import LockNotAcquired
from core.logging import get_logger
from core.runtime import runtime
from handlers.accounts import PlatformAccount, PlatformUnavailable

log = get_logger("qudao.dingtalk.login")
TOKEN_KEY = "dingtalk:oapi_token"
TOKEN_ERRORS = (40014, 42001, 88, 40001)
BAD_CODE = (40078, 40079, 60020)


class DingTalkLogin:
    def __init__(self, http: aiohttp.ClientSession, config: DingTalkConfig) -> None:
        self.http = http
        self.config = config
        self.base = config.oapi_base.rstrip("/")

    async def access_token(self, stale: str | None = None) -> str:
        """The cached app token; `stale` = the token DingTalk just refused (refetch once)."""
        kv = runtime().kv
        cached = await kv.get(TOKEN_KEY)
        if cached is not None and cached.decode() != stale:
            return cached.decode()
        try:
            return await self._refresh(stale)
        except LockNotAcquired:
            raise PlatformUnavailable("DingTalk token refresh busy, try again") from None

    async def _refresh(self, stale: str | None) -> str:
        kv = runtime().kv
        async with kv.lock("lock:" + TOKEN_KEY, 15, blocking_timeout=10):
            cached = await kv.get(TOKEN_KEY)
            if cached is not None and cached.decode() != stale:
                return cached.decode()  # another instance refreshed it meanwhile
            params = {"appkey": self.config.app_key, "appsecret": self.config.app_secret}
            data = await get_json(self.http, "GET", self.base + "/gettoken", params=params)
            token = data.get("access_token")
            if int(data.get("errcode") or 0) != 0 or not token:
                log.warning("dingtalk_gettoken_failed", errcode=data.get("errcode"))
                raise PlatformUnavailable("DingTalk refused the app token")
            ttl = max(60, int(data.get("expires_in") or 7200) - 300)
            await kv.set(TOKEN_KEY, str(token), ttl=ttl)
            return str(token)

    async def dingtalk_user(self, auth_code: str) -> PlatformAccount:
        if not self.config.app_key or not self.config.app_secret:
            raise PlatformUnavailable("DingTalk login is not configured (dingtalk.app_key / app_secret)")
        token = await self.access_token()
        data = await self._getuserinfo(token, auth_code)
        if int(data.get("errcode") or 0) in TOKEN_ERRORS:
            data = await self._getuserinfo(await self.access_token(stale=token), auth_code)
        errcode = int(data.get("errcode") or 0)
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        if errcode == 0 and result.get("userid"):
            return PlatformAccount(
                "dingtalk", str(result["userid"]), result.get("unionid") or None, result.get("name")
            )
        if errcode in BAD_CODE:
            raise ValidationError("auth_code invalid or expired", {"field": "auth_code"})
        if errcode in (90018, 90002, 90006):
            raise RateLimited("DingTalk login quota reached, try again shortly", 10)
        log.warning("dingtalk_login_refused", errcode=errcode, errmsg=str(data.get("errmsg", ""))[:200])
        raise PlatformUnavailable(f"DingTalk refused the login (errcode {errcode})")

    async def _getuserinfo(self, token: str, code: str) -> dict:  # type: ignore[type-arg]
        url = self.base + "/topapi/v2/user/getuserinfo"
        return await get_json(self.http, "POST", url, params={"access_token": token}, json={"code": code})
