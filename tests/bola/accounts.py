"""BOLA cases for the sign-in routes (and the system ping)."""

from __future__ import annotations

from tests.bola import Case, Probe
from tests.factories import PASSWORD


async def _ping(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/ping")


async def _password(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/auth/password-login", body={"username": world.admin.username, "password": PASSWORD})


async def _bad_code(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/auth/wechat-login", body={})  # no platform call: rejected before it


async def _bad_auth_code(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/auth/dingtalk-login", body={"auth_code": ""})


async def _bind(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/auth/bind", body={"bind_ticket": "no-such-ticket", "invite_code": "ABCDEFGH"})


async def _logout(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/auth/logout", body={})


async def _me(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/me")


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/ping"): Case(_ping),
    ("POST", "/auth/password-login"): Case(_password),
    ("POST", "/auth/wechat-login"): Case(_bad_code, ok=(400,)),
    ("POST", "/auth/dingtalk-login"): Case(_bad_auth_code, ok=(400,)),
    ("POST", "/auth/bind"): Case(_bind, ok=(400,)),
    ("POST", "/auth/logout"): Case(_logout),
    ("GET", "/me"): Case(_me),
}
