"""Sign-in: password login with lock-out, mini-program / DingTalk login against the fake
platform, binding with invite codes, logout, and tokens of suspended users."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from channels.fake.app import create_fake_app
from channels.fake.state import FakeState
from core import runtime as rt
from core.clock import FixedClock, SystemClock, now, set_clock
from core.config import Config
from handlers.identity import issue_invite_code
from models.base import DistributorStatus, UserRole, UserStatus
from models.user import Identity, InviteCode, User
from tests import factories
from tests.bola import cached_hash
from tests.factories import PASSWORD, auth, make_distributor, make_user


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


@pytest.fixture
async def fake(aiohttp_server):  # type: ignore[no-untyped-def]
    state = FakeState()
    server = await aiohttp_server(create_fake_app(state))
    return state, str(server.make_url("")).rstrip("/")


@pytest.fixture
def config(config, fake):  # type: ignore[no-untyped-def]
    _, base = fake
    return config.with_overrides(
        {
            "wechat": {"appid": "wx-test", "secret": "wx-secret", "api_base": base},
            "dingtalk": {"app_key": "dt-key", "app_secret": "dt-secret", "oapi_base": base},
            "limits": {"login_failures_before_lock": 3},
            "server": {"trusted_proxies": ["127.0.0.1"]},  # X-Forwarded-For plays client addresses
        }
    )


async def login(client, username: str, password: str = PASSWORD, ip: str | None = None):  # type: ignore[no-untyped-def]
    """`ip`: the client address (one address alone cannot lock an account: test_auth_limits)."""
    headers = {"X-Forwarded-For": ip} if ip else None
    return await client.post(
        "/api/v1/auth/password-login", json={"username": username, "password": password}, headers=headers
    )


# --- password login -----------------------------------------------------------------------------


async def test_password_login_when_right_returns_token_that_works(client) -> None:
    user = await make_user(UserRole.ADMIN)
    resp = await login(client, user.username)
    assert resp.status == 200
    data = await resp.json()
    assert data["user"]["id"] == user.id and data["user"]["role"] == "admin" and data["bound"] is True
    me = await client.get("/api/v1/me", headers=auth(data["token"]))
    assert me.status == 200
    body = await me.json()
    assert body["id"] == user.id and body["scope_distributor_ids"] is None
    assert "password_hash" not in body and "password_hash" not in data["user"]


@pytest.mark.parametrize("username", ["known", "nobody-here"])
async def test_password_login_when_wrong_is_401(client, username: str) -> None:
    await make_user(UserRole.SALES, username="known")
    resp = await login(client, username, "wrong-password")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_password_login_when_extra_field_is_400(client) -> None:
    resp = await client.post(
        "/api/v1/auth/password-login", json={"username": "a", "password": "b", "role": "admin"}
    )
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "validation_error"


async def test_password_login_after_failures_locks_even_the_right_password(client) -> None:
    user = await make_user(UserRole.SALES)
    for i in range(3):
        assert (await login(client, user.username, "nope", f"203.0.113.{i}")).status == 401
    resp = await login(client, user.username)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 60
    assert (await resp.json())["error"]["code"] == "rate_limited"
    await user.refresh_from_db()
    assert user.failed_logins == 3 and user.locked_until is not None and user.locked_until > now()


async def test_lock_lasts_login_lock_s_then_the_right_password_works(client) -> None:
    r = rt.runtime()
    r.config = r.config.with_overrides({"limits": {"login_lock_s": 120}})
    user = await make_user(UserRole.SALES)
    for i in range(3):
        assert (await login(client, user.username, "nope", f"203.0.113.{i}")).status == 401
    resp = await login(client, user.username)
    assert resp.status == 429 and 60 < float(resp.headers["Retry-After"]) <= 120
    set_clock(FixedClock(now() + timedelta(seconds=60)))
    try:
        assert (await login(client, user.username)).status == 429  # half-way: still locked
        set_clock(FixedClock(now() + timedelta(seconds=61)))
        assert (await login(client, user.username)).status == 200
    finally:
        set_clock(SystemClock())
    await user.refresh_from_db()
    assert user.failed_logins == 0 and user.locked_until is None


async def test_password_login_concurrent_guesses_get_at_most_limit_tries(client) -> None:
    user = await make_user(UserRole.SALES)
    resps = await asyncio.gather(
        *(login(client, user.username, f"guess-{i}", f"203.0.113.{i}") for i in range(40))
    )
    statuses = sorted(r.status for r in resps)
    assert statuses.count(401) == 3 and statuses.count(429) == 37


async def test_password_login_success_resets_the_failure_count(client) -> None:
    user = await make_user(UserRole.SALES)
    for i in range(2):
        assert (await login(client, user.username, "nope", f"203.0.113.{i}")).status == 401
    assert (await login(client, user.username)).status == 200
    for i in range(2):
        assert (await login(client, user.username, "nope", f"198.51.100.{i}")).status == 401
    assert (await login(client, user.username)).status == 200
    await user.refresh_from_db()
    assert user.failed_logins == 0


async def test_password_login_when_suspended_is_401(client) -> None:
    user = await make_user(UserRole.SALES, status=UserStatus.SUSPENDED)
    resp = await login(client, user.username)
    assert resp.status == 401


async def test_token_of_suspended_distributor_user_is_refused(client) -> None:
    dist = await make_distributor()
    user = await make_user(UserRole.DISTRIBUTOR, distributor=dist)
    token = (await (await login(client, user.username)).json())["token"]
    assert (await client.get("/api/v1/me", headers=auth(token))).status == 200
    dist.status = DistributorStatus.SUSPENDED
    await dist.save()
    from handlers.auth import revoke_user_tokens

    await revoke_user_tokens([user.id])  # what the admin suspend does (tested in test_admin_*)
    assert (await client.get("/api/v1/me", headers=auth(token))).status == 401
    assert (await login(client, user.username)).status == 401


# --- logout ---------------------------------------------------------------------------------------


async def test_logout_ends_only_the_current_token(client) -> None:
    user = await make_user(UserRole.SALES)
    t1 = (await (await login(client, user.username)).json())["token"]
    t2 = (await (await login(client, user.username)).json())["token"]
    resp = await client.post("/api/v1/auth/logout", headers=auth(t1))
    assert resp.status == 200 and (await resp.json())["revoked"] == 1
    assert (await client.get("/api/v1/me", headers=auth(t1))).status == 401
    assert (await client.get("/api/v1/me", headers=auth(t2))).status == 200


async def test_logout_all_ends_every_token(client) -> None:
    user = await make_user(UserRole.SALES)
    tokens = [(await (await login(client, user.username)).json())["token"] for _ in range(3)]
    resp = await client.post("/api/v1/auth/logout", json={"all": True}, headers=auth(tokens[0]))
    assert (await resp.json())["revoked"] == 3
    for t in tokens:
        assert (await client.get("/api/v1/me", headers=auth(t))).status == 401


async def test_me_without_token_is_401(client) -> None:
    assert (await client.get("/api/v1/me")).status == 401
    assert (await client.get("/api/v1/me", headers=auth("x" * 40))).status == 401


# --- mini-program login + bind --------------------------------------------------------------------


async def _invite(user: User) -> str:
    return (await issue_invite_code(None, user.id)).code


async def test_wechat_login_unbound_then_bind_then_login(client, fake) -> None:
    state, _ = fake
    state.wechat_codes["c1"] = {"openid": "o-alice", "unionid": "u-alice"}
    user = await make_user(UserRole.SALES)
    resp = await client.post("/api/v1/auth/wechat-login", json={"code": "c1"})
    assert resp.status == 200
    data = await resp.json()
    assert data["bound"] is False and data["bind_ticket"] and data["token"] is None
    assert "session_key" not in str(data)
    call = state.calls[-1]
    assert call["query"]["appid"] == "wx-test" and call["query"]["grant_type"] == "authorization_code"

    resp = await client.post(
        "/api/v1/auth/bind", json={"bind_ticket": data["bind_ticket"], "invite_code": await _invite(user)}
    )
    assert resp.status == 200
    bound = await resp.json()
    assert bound["user"]["id"] == user.id and bound["token"]
    ident = await Identity.get(channel="miniapp", account_id="o-alice")
    assert ident.user_id == user.id and ident.unionid == "u-alice"  # type: ignore[attr-defined]

    resp = await client.post("/api/v1/auth/wechat-login", json={"code": "demo-o-alice"})
    again = await resp.json()
    assert again["bound"] is True and again["user"]["id"] == user.id
    me = await (await client.get("/api/v1/me", headers=auth(again["token"]))).json()
    assert me["identities"] == [{"channel": "miniapp", "account_id": "o-alice"}]


async def _ticket(client, code: str) -> str:  # type: ignore[no-untyped-def]
    resp = await client.post("/api/v1/auth/wechat-login", json={"code": code})
    return (await resp.json())["bind_ticket"]


async def test_bind_with_unknown_expired_or_used_invite_code_is_400(client) -> None:
    user = await make_user(UserRole.SALES)
    ticket = await _ticket(client, "demo-o-bob")
    bad = await client.post("/api/v1/auth/bind", json={"bind_ticket": ticket, "invite_code": "NOPE2345"})
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "validation_error"

    expired = await _invite(user)
    await InviteCode.filter(code=expired).update(expires_at=now() - timedelta(seconds=1))
    resp = await client.post("/api/v1/auth/bind", json={"bind_ticket": ticket, "invite_code": expired})
    assert resp.status == 400

    code = await _invite(user)
    ok = await client.post("/api/v1/auth/bind", json={"bind_ticket": ticket, "invite_code": code})
    assert ok.status == 200
    other = await _ticket(client, "demo-o-carol")
    used = await client.post("/api/v1/auth/bind", json={"bind_ticket": other, "invite_code": code})
    assert used.status == 400
    assert not await Identity.filter(account_id="o-carol").exists()


async def test_bind_with_unknown_ticket_is_400_and_ticket_is_single_use(client) -> None:
    user = await make_user(UserRole.SALES)
    resp = await client.post("/api/v1/auth/bind", json={"bind_ticket": "nope", "invite_code": "ABCDEFGH"})
    assert resp.status == 400
    ticket = await _ticket(client, "demo-o-dan")
    assert (
        await client.post(
            "/api/v1/auth/bind", json={"bind_ticket": ticket, "invite_code": await _invite(user)}
        )
    ).status == 200
    again = await client.post(
        "/api/v1/auth/bind", json={"bind_ticket": ticket, "invite_code": await _invite(user)}
    )
    assert again.status == 400


async def test_concurrent_binds_with_one_invite_code_bind_once(client) -> None:
    user = await make_user(UserRole.SALES)
    code = await _invite(user)
    tickets = [await _ticket(client, f"demo-o-race{i}") for i in range(8)]
    resps = await asyncio.gather(
        *(client.post("/api/v1/auth/bind", json={"bind_ticket": t, "invite_code": code}) for t in tickets)
    )
    assert sorted(r.status for r in resps) == [200] + [400] * 7
    assert await Identity.filter(user_id=user.id).count() == 1


async def test_wechat_login_of_suspended_user_is_401(client) -> None:
    user = await make_user(UserRole.SALES, status=UserStatus.SUSPENDED)
    await Identity.create(user=user, channel="miniapp", account_id="o-sus")
    resp = await client.post("/api/v1/auth/wechat-login", json={"code": "demo-o-sus"})
    assert resp.status == 401


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"errcode": 40029}, 400, "validation_error"),
        ({"errcode": 45011}, 429, "rate_limited"),
        ({"errcode": 40226}, 403, "forbidden"),
        ({"errcode": -1}, 503, "platform_unavailable"),
        ({"status": 502}, 503, "platform_unavailable"),
    ],
)
async def test_wechat_login_platform_errors_map_to_api_errors(client, fake, fault, status, code) -> None:
    state, _ = fake
    from channels.fake.state import Fault

    state.faults.append(Fault(match="/sns/jscode2session", **fault))
    resp = await client.post("/api/v1/auth/wechat-login", json={"code": "demo-o-x"})
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    if status == 429:
        assert resp.headers["Retry-After"] == "60"
    # the fault was used up: the next call works
    ok = await client.post("/api/v1/auth/wechat-login", json={"code": "demo-o-x"})
    assert ok.status == 200


async def test_wechat_login_with_unknown_or_reused_code_is_400(client, fake) -> None:
    state, _ = fake
    state.wechat_codes["once"] = {"openid": "o-once"}
    assert (await client.post("/api/v1/auth/wechat-login", json={"code": "once"})).status == 200
    assert (await client.post("/api/v1/auth/wechat-login", json={"code": "once"})).status == 400
    assert (await client.post("/api/v1/auth/wechat-login", json={"code": "garbage"})).status == 400


async def test_wechat_login_when_platform_unreachable_is_503(client, config) -> None:
    from channels.wechat.login import MiniappLogin
    from core.keys import HTTP, RUNTIME

    app = client.app
    cfg = config.wechat.model_copy(update={"api_base": "http://127.0.0.1:1"})
    app[RUNTIME].ports["login"].miniapp_session = MiniappLogin(app[HTTP], cfg).miniapp_session
    resp = await client.post("/api/v1/auth/wechat-login", json={"code": "demo-x"})
    assert resp.status == 503


# --- DingTalk --------------------------------------------------------------------------------------


async def test_dingtalk_login_unbound_then_bound_and_token_cached(client, fake) -> None:
    state, _ = fake
    user = await make_user(UserRole.SALES)
    resp = await client.post("/api/v1/auth/dingtalk-login", json={"auth_code": "demo-dt-1"})
    data = await resp.json()
    assert resp.status == 200 and data["bound"] is False
    bound = await client.post(
        "/api/v1/auth/bind", json={"bind_ticket": data["bind_ticket"], "invite_code": await _invite(user)}
    )
    assert bound.status == 200
    assert await Identity.filter(channel="dingtalk", account_id="dt-1", user_id=user.id).exists()
    again = await (await client.post("/api/v1/auth/dingtalk-login", json={"auth_code": "demo-dt-1"})).json()
    assert again["user"]["id"] == user.id
    assert len([c for c in state.calls if c["kind"] == "dingtalk.gettoken"]) == 1
    info = [c for c in state.calls if c["kind"] == "dingtalk.getuserinfo"]
    assert len(info) == 2 and info[0]["body"] == {"code": "demo-dt-1"}


async def test_dingtalk_login_refetches_a_refused_token_once(client, fake) -> None:
    state, _ = fake
    from channels.fake.state import Fault

    assert (await client.post("/api/v1/auth/dingtalk-login", json={"auth_code": "demo-a"})).status == 200
    state.faults.append(Fault(match="/topapi/v2/user/getuserinfo", errcode=40014))
    resp = await client.post("/api/v1/auth/dingtalk-login", json={"auth_code": "demo-a"})
    assert resp.status == 200
    assert len([c for c in state.calls if c["kind"] == "dingtalk.gettoken"]) == 2


async def test_dingtalk_login_with_bad_code_is_400(client) -> None:
    resp = await client.post("/api/v1/auth/dingtalk-login", json={"auth_code": "not-a-code"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "validation_error"


async def test_platform_login_not_configured_is_503_without_a_call(client, fake) -> None:
    from channels.wechat.login import MiniappLogin
    from core.keys import HTTP, RUNTIME

    state, _ = fake
    app = client.app
    app[RUNTIME].ports["login"].miniapp_session = MiniappLogin(app[HTTP], Config().wechat).miniapp_session
    resp = await client.post("/api/v1/auth/wechat-login", json={"code": "demo-x"})
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "platform_unavailable"
    assert state.calls == []
