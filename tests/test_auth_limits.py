"""Sign-in throttles: platform logins are rate-limited per client address and globally
before any platform call, invite-code guesses per bind ticket / platform account / address,
and one address cannot lock an account by itself. The client address is the TCP peer, or
X-Forwarded-For's last untrusted hop when the peer is in `[server] trusted_proxies` (here
127.0.0.1, the test client), so each test plays several addresses through one connection."""

from __future__ import annotations

import asyncio

import pytest

from channels.fake.app import create_fake_app
from channels.fake.state import FakeState
from core.clock import now
from handlers.identity import issue_invite_code
from models.base import UserRole
from models.user import Identity, User
from tests import factories
from tests.bola import cached_hash
from tests.factories import PASSWORD, make_user

ATTACKER, OTHER, THIRD = "203.0.113.7", "198.51.100.9", "192.0.2.44"


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


@pytest.fixture
async def fake(aiohttp_server):  # type: ignore[no-untyped-def]
    state = FakeState()
    server = await aiohttp_server(create_fake_app(state))
    return state, str(server.make_url("")).rstrip("/")


LIMITS = {
    "login_failures_before_lock": 3,
    "login_failures_per_ip": 2,
    "password_logins_per_ip_per_min": 50,
    "platform_logins_per_ip_per_min": 5,
    "platform_logins_per_min": 8,
    "bind_failures_per_ticket": 3,
    "bind_failures_per_account_per_hour": 4,
    "bind_failures_per_ip_per_hour": 6,
}


@pytest.fixture
def config(config, fake):  # type: ignore[no-untyped-def]
    _, base = fake
    return config.with_overrides(
        {
            "server": {"trusted_proxies": ["127.0.0.1"]},
            "wechat": {"appid": "wx-test", "secret": "wx-secret", "api_base": base},
            "dingtalk": {"app_key": "dt-key", "app_secret": "dt-secret", "oapi_base": base},
            "limits": LIMITS,
        }
    )


def via(ip: str) -> dict[str, str]:
    # what a trusted reverse proxy appends; the first entry is the client's own claim
    return {"X-Forwarded-For": f"10.9.9.9, {ip}"}


def _calls(state: FakeState, kind: str) -> int:
    return len([c for c in state.calls if c["kind"] == kind])


async def _wechat(client, code: str, ip: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/auth/wechat-login", json={"code": code}, headers=via(ip))


# --- platform logins --------------------------------------------------------------------------------


async def test_bogus_wechat_codes_stop_reaching_the_platform_at_the_per_address_limit(client, fake) -> None:
    state, _ = fake
    statuses = [(await _wechat(client, f"bogus-{i}", ATTACKER)).status for i in range(12)]
    assert statuses == [400] * 5 + [429] * 7
    assert _calls(state, "wechat.jscode2session") == 5
    resp = await _wechat(client, "bogus-x", ATTACKER)
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "rate_limited"
    assert 0 < int(resp.headers["Retry-After"]) <= 60
    assert (await _wechat(client, "demo-o-ok", OTHER)).status == 200  # another address is not held up
    assert _calls(state, "wechat.jscode2session") == 6


async def test_concurrent_bogus_dingtalk_codes_call_the_platform_at_most_the_limit(client, fake) -> None:
    state, _ = fake
    resps = await asyncio.gather(
        *(
            client.post("/api/v1/auth/dingtalk-login", json={"auth_code": f"bad-{i}"}, headers=via(ATTACKER))
            for i in range(30)
        )
    )
    assert sorted(r.status for r in resps) == [400] * 5 + [429] * 25
    assert _calls(state, "dingtalk.getuserinfo") == 5


async def test_platform_logins_have_a_global_limit_across_addresses(client, fake) -> None:
    state, _ = fake
    statuses = [
        (await _wechat(client, f"bogus-{ip}-{i}", ip)).status
        for ip in (ATTACKER, OTHER, THIRD)
        for i in range(5)
    ]
    assert statuses.count(400) == 8 and statuses.count(429) == 7
    assert _calls(state, "wechat.jscode2session") == 8


async def test_ipv6_clients_count_by_their_64_so_rotating_addresses_does_not_help(client, fake) -> None:
    state, _ = fake
    statuses = [(await _wechat(client, f"bogus-{i}", f"2001:db8:0:1::{i + 1:x}")).status for i in range(7)]
    assert statuses == [400] * 5 + [429] * 2
    assert (await _wechat(client, "bogus-next", "2001:db8:0:2::1")).status == 400  # another /64
    assert _calls(state, "wechat.jscode2session") == 6


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(config, fake, aiohttp_client) -> None:
    from core.app import create_app
    from core.keys import KV_STORE

    state, _ = fake
    app = create_app(config.with_overrides({"server": {"trusted_proxies": []}}), scheduler=False)
    client = await aiohttp_client(app)
    try:
        statuses = [(await _wechat(client, f"bogus-{i}", f"203.0.113.{i}")).status for i in range(7)]
    finally:
        await app[KV_STORE].flush_namespace()
    assert statuses == [400] * 5 + [429] * 2  # every "address" is really 127.0.0.1
    assert _calls(state, "wechat.jscode2session") == 5


# --- bind -------------------------------------------------------------------------------------------


async def _ticket(client, code: str, ip: str = ATTACKER) -> str:  # type: ignore[no-untyped-def]
    resp = await _wechat(client, code, ip)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["bind_ticket"]  # type: ignore[no-any-return]


async def _bind(client, ticket: str, code: str, ip: str = ATTACKER):  # type: ignore[no-untyped-def]
    return await client.post(
        "/api/v1/auth/bind", json={"bind_ticket": ticket, "invite_code": code}, headers=via(ip)
    )


async def test_bind_ticket_is_dropped_after_too_many_wrong_invite_codes(client) -> None:
    user = await make_user(UserRole.SALES)
    ticket = await _ticket(client, "demo-o-guess")
    for i in range(3):
        assert (await _bind(client, ticket, f"WRONG{i:03d}")).status == 400
    right = (await issue_invite_code(None, user.id)).code
    resp = await _bind(client, ticket, right)
    assert resp.status == 400 and (await resp.json())["error"]["details"]["field"] == "bind_ticket"
    assert not await Identity.filter(account_id="o-guess").exists()


async def test_concurrent_guesses_on_one_ticket_get_at_most_the_limit(client) -> None:
    await make_user(UserRole.SALES)
    ticket = await _ticket(client, "demo-o-rush")
    resps = await asyncio.gather(*(_bind(client, ticket, f"RUSH{i:04d}") for i in range(20)))
    tried = [r for r in resps if (await r.json())["error"]["details"].get("field") == "invite_code"]
    assert len(tried) == 3  # the rest found the ticket spent


async def test_bind_failures_are_limited_per_platform_account_across_tickets(client) -> None:
    user = await make_user(UserRole.SALES)
    for ip in (ATTACKER, OTHER):  # a new ticket (and address) does not reset the account's count
        ticket = await _ticket(client, "demo-o-acct", ip)
        for i in range(2):
            assert (await _bind(client, ticket, f"NOPE{i:04d}", ip)).status == 400
    ticket = await _ticket(client, "demo-o-acct", THIRD)
    resp = await _bind(client, ticket, (await issue_invite_code(None, user.id)).code, THIRD)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 60
    assert not await Identity.filter(account_id="o-acct").exists()
    # another platform account is not held up
    other = await _ticket(client, "demo-o-fine", THIRD)
    assert (await _bind(client, other, (await issue_invite_code(None, user.id)).code, THIRD)).status == 200


async def test_bind_failures_are_limited_per_address_across_accounts(client) -> None:
    user = await make_user(UserRole.SALES)
    for n in range(3):
        ticket = await _ticket(client, f"demo-o-ip{n}")
        for i in range(2):
            assert (await _bind(client, ticket, f"NOPE{i:04d}")).status == 400
    ticket = await _ticket(client, "demo-o-ip9")
    resp = await _bind(client, ticket, (await issue_invite_code(None, user.id)).code)
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "rate_limited"
    ticket = await _ticket(client, "demo-o-ip9", OTHER)
    assert (await _bind(client, ticket, (await issue_invite_code(None, user.id)).code, OTHER)).status == 200


async def test_a_successful_bind_does_not_use_up_the_allowance(client) -> None:
    for n in range(8):  # more binds than bind_failures_per_ip_per_hour, none failing
        user = await make_user(UserRole.SALES)
        ticket = await _ticket(client, f"demo-o-ok{n}", THIRD if n % 2 else ATTACKER)
        assert (await _bind(client, ticket, (await issue_invite_code(None, user.id)).code)).status == 200


# --- password lock-out --------------------------------------------------------------------------------


async def _login(client, username: str, password: str, ip: str):  # type: ignore[no-untyped-def]
    return await client.post(
        "/api/v1/auth/password-login", json={"username": username, "password": password}, headers=via(ip)
    )


async def test_one_address_cannot_lock_out_the_admin(client) -> None:
    admin = await make_user(UserRole.ADMIN, username="admin")
    statuses = [(await _login(client, "admin", f"guess-{i}", ATTACKER)).status for i in range(10)]
    assert statuses == [401, 401] + [429] * 8
    await admin.refresh_from_db()
    assert admin.locked_until is None
    assert (await _login(client, "admin", PASSWORD, OTHER)).status == 200
    # the right password from the attacker's address waits too: it has used its allowance
    assert (await _login(client, "admin", PASSWORD, ATTACKER)).status == 429


async def test_concurrent_guesses_from_one_address_cannot_lock_the_account(client) -> None:
    admin = await make_user(UserRole.ADMIN, username="admin")
    resps = await asyncio.gather(*(_login(client, "admin", f"g{i}", ATTACKER) for i in range(30)))
    assert sorted(r.status for r in resps) == [401] * 2 + [429] * 28
    await admin.refresh_from_db()
    assert admin.locked_until is None and admin.failed_logins == 2
    assert (await _login(client, "admin", PASSWORD, OTHER)).status == 200


async def test_guesses_from_several_addresses_still_lock_the_account(client) -> None:
    admin = await make_user(UserRole.ADMIN, username="admin")
    for ip in (ATTACKER, OTHER):
        for i in range(2):
            await _login(client, "admin", f"guess-{i}", ip)
    await admin.refresh_from_db()
    assert admin.locked_until is not None and admin.locked_until > now()
    assert (await _login(client, "admin", PASSWORD, THIRD)).status == 429


async def test_password_logins_per_address_are_rate_limited_across_usernames(client) -> None:
    from core import runtime as rt

    r = rt.runtime()
    r.config = r.config.with_overrides({"limits": {"password_logins_per_ip_per_min": 4}})
    statuses = [(await _login(client, f"user{i}", "spray-pass", ATTACKER)).status for i in range(6)]
    assert statuses == [401] * 4 + [429] * 2
    await make_user(UserRole.SALES, username="real")
    assert (await _login(client, "real", PASSWORD, OTHER)).status == 200
    assert not await User.filter(locked_until__isnull=False).exists()
