"""Platform access tokens (WeChat, WeCom, DingTalk), shared by every instance.

- The token lives in the kv store under `access_token:<platform>:<app id>` with
  TTL = expires_in - margin, so every instance reads the same one.
- Only one instance refreshes at a time: a kv lock; the others wait for it and re-read.
- WeChat uses `POST /cgi-bin/stable_token` (force_refresh false): it hands every caller the
  same token until shortly before expiry, so instances never invalidate each other.
- `invalidate(platform, token)` drops the cached token only if it is still the one that
  failed (another instance may already have refreshed it).
- `call(platform, fn)`: run `fn(token)`; on 40001/40014/42001 invalidate, fetch, and retry
  ONCE — never in a loop (WxJava#1381 burned the daily token quota that way).

Usage:
    tokens = TokenProvider(config, http_session, kv)
    data = await tokens.call("wechat", lambda token: post_json(url, token, body))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from core.logging import get_logger

if TYPE_CHECKING:
    from core.config import Config
    from core.kv import KV

log = get_logger("qudao.tokens")

Platform = Literal["wechat", "wecom", "dingtalk"]
PLATFORMS: tuple[Platform, ...] = ("wechat", "wecom", "dingtalk")

# errcodes meaning "this access_token is invalid / expired": refresh once, retry once.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# errcodes of a token fetch worth retrying later (busy, frequency limits).
_RETRYABLE_FETCH = frozenset({-1, 45009, 45011, 45033})

DEFAULT_MARGIN_S = 300  # refresh this long before the platform's expiry
LOCK_LEASE_S = 20.0  # a refresher that died frees the lock after this
LOCK_WAIT_S = 20.0  # how long others wait for the refresher before giving up
FORCE_REFRESH_PER_DAY = 10  # WeChat allows 20/day; keep half for humans


class TokenError(Exception):
    """The platform would not give us a token (or could not be reached)."""

    def __init__(self, platform: str, errcode: int | None, message: str, *, retryable: bool) -> None:
        super().__init__(f"{platform} access_token: {message}" + (f" ({errcode})" if errcode else ""))
        self.platform = platform
        self.errcode = errcode
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class FetchedToken:
    token: str
    expires_in: int


def errcode_of(data: Any) -> int:
    """The errcode of a platform JSON answer (absent = 0 = ok)."""
    if not isinstance(data, dict):
        return 0
    try:
        return int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


class TokenProvider:
    """Cached, lock-refreshed access tokens. Constructed with (config, http session, kv)."""

    def __init__(
        self,
        config: Config,
        http: aiohttp.ClientSession,
        kv: KV,
        *,
        margin_s: int = DEFAULT_MARGIN_S,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.config = config
        self.http = http
        self.kv = kv
        self.margin_s = margin_s
        self.lock_wait_s = lock_wait_s

    # --- keys ----------------------------------------------------------------------------

    def app_id(self, platform: Platform) -> str:
        if platform == "wechat":
            return self.config.wechat.appid
        if platform == "wecom":
            return f"{self.config.wecom.corp_id}.{self.config.wecom.agent_id}"
        if platform == "dingtalk":
            return self.config.dingtalk.app_key
        raise ValueError(f"unknown platform {platform!r}")

    def cache_key(self, platform: Platform) -> str:
        return f"access_token:{platform}:{self.app_id(platform)}"

    def _lock_name(self, platform: Platform) -> str:
        return f"access_token:{platform}:{self.app_id(platform)}"

    def _bad_key(self, platform: Platform) -> str:
        return f"access_token_bad:{platform}:{self.app_id(platform)}"

    # --- public API ----------------------------------------------------------------------

    async def get(self, platform: Platform) -> str:
        """The current token, fetching it (one instance at a time) when none is cached."""
        cached = await self.kv.get(self.cache_key(platform))
        if cached:
            return cached.decode()
        handle = await self.kv.acquire_lock(
            self._lock_name(platform), LOCK_LEASE_S, blocking=True, blocking_timeout=self.lock_wait_s
        )
        if handle is None:
            # The refresher is slow or died: one last look before giving up for now.
            cached = await self.kv.get(self.cache_key(platform))
            if cached:
                return cached.decode()
            raise TokenError(platform, None, "refresh lock not released in time", retryable=True)
        async with handle:
            cached = await self.kv.get(self.cache_key(platform))
            if cached:  # someone refreshed while we waited
                return cached.decode()
            fetched = await self._fetch(platform, force=False)
            bad = await self.kv.get(self._bad_key(platform))
            if platform == "wechat" and bad is not None and bad.decode() == fetched.token:
                fetched = await self._force_refresh(platform, fetched)
            ttl = max(30, fetched.expires_in - self.margin_s)
            if fetched.expires_in <= self.margin_s:
                ttl = max(1, fetched.expires_in // 2)
            await self.kv.set(self.cache_key(platform), fetched.token, ttl)
            log.info("access_token_refreshed", platform=platform, ttl=ttl)
            return fetched.token

    async def invalidate(self, platform: Platform, token: str) -> bool:
        """Drop the cached token if it is still `token`; True when it was dropped.

        Done under the refresh lock, so it never deletes a token another instance has just
        stored in its place.
        """
        handle = await self.kv.acquire_lock(
            self._lock_name(platform), LOCK_LEASE_S, blocking=True, blocking_timeout=self.lock_wait_s
        )
        if handle is None:
            return False  # someone is refreshing right now: their token will be fresh
        async with handle:
            cached = await self.kv.get(self.cache_key(platform))
            await self.kv.set(self._bad_key(platform), token, 600)
            if cached is not None and cached.decode() == token:
                await self.kv.delete(self.cache_key(platform))
                log.info("access_token_invalidated", platform=platform)
                return True
            return False

    async def call(self, platform: Platform, fn: Callable[[str], Awaitable[Any]]) -> Any:
        """`fn(token)` returning the platform's JSON; on a token errcode, invalidate and retry
        exactly once. Whatever the second answer is, it is returned as is."""
        token = await self.get(platform)
        data = await fn(token)
        if errcode_of(data) not in TOKEN_ERRCODES:
            return data
        log.info("access_token_rejected", platform=platform, errcode=errcode_of(data))
        await self.invalidate(platform, token)
        token = await self.get(platform)
        return await fn(token)

    # --- fetching ------------------------------------------------------------------------

    async def _force_refresh(self, platform: Platform, fetched: FetchedToken) -> FetchedToken:
        """stable_token handed back the very token the API just rejected: force a new one,
        a few times a day at most (the platform allows 20)."""
        allowed = await self.kv.rate_limit(f"token_force:{platform}", FORCE_REFRESH_PER_DAY, 86_400)
        if not allowed.allowed:
            log.warning("access_token_force_refresh_quota", platform=platform)
            return fetched
        return await self._fetch(platform, force=True)

    async def _fetch(self, platform: Platform, *, force: bool) -> FetchedToken:
        cfg = self.config
        if platform == "wechat":
            if not (cfg.wechat.appid and cfg.wechat.secret):
                raise TokenError(platform, None, "wechat.appid/secret not configured", retryable=False)
            url = cfg.wechat.api_base.rstrip("/") + "/cgi-bin/stable_token"
            body = {
                "grant_type": "client_credential",
                "appid": cfg.wechat.appid,
                "secret": cfg.wechat.secret,
                "force_refresh": force,
            }
            data = await self._request(platform, "POST", url, json=body)
        elif platform == "wecom":
            if not (cfg.wecom.corp_id and cfg.wecom.secret):
                raise TokenError(platform, None, "wecom.corp_id/secret not configured", retryable=False)
            url = cfg.wecom.api_base.rstrip("/") + "/cgi-bin/gettoken"
            params = {"corpid": cfg.wecom.corp_id, "corpsecret": cfg.wecom.secret}
            data = await self._request(platform, "GET", url, params=params)
        elif platform == "dingtalk":
            if not (cfg.dingtalk.app_key and cfg.dingtalk.app_secret):
                raise TokenError(
                    platform, None, "dingtalk.app_key/app_secret not configured", retryable=False
                )
            url = cfg.dingtalk.oapi_base.rstrip("/") + "/gettoken"
            params = {"appkey": cfg.dingtalk.app_key, "appsecret": cfg.dingtalk.app_secret}
            data = await self._request(platform, "GET", url, params=params)
        else:
            raise ValueError(f"unknown platform {platform!r}")
        code = errcode_of(data)
        token = data.get("access_token") if isinstance(data, dict) else None
        if code != 0 or not isinstance(token, str) or not token:
            msg = (
                str(data.get("errmsg", "no access_token in answer"))
                if isinstance(data, dict)
                else "bad answer"
            )
            raise TokenError(platform, code or None, msg, retryable=code in _RETRYABLE_FETCH)
        try:
            expires_in = int(data.get("expires_in") or 7200)
        except (TypeError, ValueError):
            expires_in = 7200
        return FetchedToken(token, max(1, expires_in))

    async def _request(self, platform: Platform, method: str, url: str, **kw: Any) -> Any:
        try:
            async with self.http.request(method, url, **kw) as resp:
                if resp.status >= 500:
                    raise TokenError(platform, None, f"HTTP {resp.status}", retryable=True)
                if resp.status >= 400:
                    raise TokenError(platform, None, f"HTTP {resp.status}", retryable=False)
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenError(
                platform, None, f"request failed: {type(exc).__name__}", retryable=True
            ) from None
        except ValueError:  # not JSON
            raise TokenError(platform, None, "answer is not JSON", retryable=True) from None
