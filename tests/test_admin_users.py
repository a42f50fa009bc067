"""Admin users: create per role, scope fields, manager limits, suspension ends sessions,
password change, invite codes, assignments refresh scope at once, audit."""

from __future__ import annotations

import asyncio

import pytest

from models.audit import AuditLog
from models.user import InviteCode, SalesAssignment, User
from tests import factories
from tests.bola import cached_hash
from tests.factories import PASSWORD, auth, make_distributor, make_user, make_world

BASE = "/api/v1/admin/users"


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


async def test_create_users_of_every_role_and_login(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    east = world.east
    bodies = [
        {
            "username": "dist_a",
            "password": "pass-word-1",
            "display_name": "经销商A",
            "role": "distributor",
            "distributor_id": east.distributor.id,
        },
        {
            "username": "rep_a",
            "password": "pass-word-1",
            "display_name": "业务员A",
            "role": "sales",
            "distributor_ids": [east.distributor.id, east.child.id],
        },
        {"display_name": "经理A", "role": "manager", "regions": ["华东", "华南"]},
        {"username": "admin_b", "password": "pass-word-1", "display_name": "管理员B", "role": "admin"},
    ]
    for body in bodies:
        resp = await client.post(BASE, json=body, headers=h)
        assert resp.status == 201, await resp.text()
        out = await resp.json()
        assert out["role"] == body["role"] and "password" not in out and "password_hash" not in out
    rep = await (await client.get(BASE, params={"q": "rep_a"}, headers=h)).json()
    assert rep["items"][0]["distributor_ids"] == sorted([east.distributor.id, east.child.id])
    login = await client.post(
        "/api/v1/auth/password-login", json={"username": "rep_a", "password": "pass-word-1"}
    )
    token = (await login.json())["token"]
    me = await (await client.get("/api/v1/me", headers=auth(token))).json()
    assert set(me["scope_distributor_ids"]) == {east.distributor.id, east.child.id}
    log = await AuditLog.filter(action="user.create").order_by("id").first()
    assert log is not None and log.after["username"] == "dist_a" and "password_hash" not in log.after  # type: ignore[index,operator]


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "x", "role": "distributor"},  # no distributor
        {"display_name": "x", "role": "sales", "distributor_id": 1},  # wrong field for role
        {"display_name": "x", "role": "distributor", "distributor_id": 1, "regions": ["华东"]},
        {"display_name": "x", "role": "root"},
        {"display_name": "x", "role": "admin", "password": "short"},
        {"display_name": "x", "role": "admin", "password": "long-enough-1"},  # password without username
        {"display_name": "x", "role": "admin", "status": "active"},  # may not be set
        {"display_name": "x", "role": "admin", "username": "has space"},
        {"display_name": "x", "role": "admin", "password_hash": "x"},
    ],
)
async def test_create_user_bad_input_is_400(client, body) -> None:
    world = await make_world()
    before = await User.all().count()
    resp = await client.post(BASE, json=body, headers=world.headers("", "admin"))
    assert resp.status == 400, await resp.text()
    assert await User.all().count() == before


async def test_duplicate_username_is_400(client) -> None:
    world = await make_world()
    body = {"username": world.east.rep.username, "display_name": "x", "role": "admin"}
    resp = await client.post(BASE, json=body, headers=world.headers("", "admin"))
    assert resp.status == 400 and (await resp.json())["error"]["details"]["field"] == "username"


async def test_manager_limits(client) -> None:
    world = await make_world()
    h = world.headers("east", "manager")
    east, north = world.east, world.north
    for role in ("admin", "manager"):
        resp = await client.post(BASE, json={"display_name": "x", "role": role}, headers=h)
        assert resp.status == 403
    out_of_region = {"display_name": "x", "role": "distributor", "distributor_id": north.distributor.id}
    assert (await client.post(BASE, json=out_of_region, headers=h)).status == 404
    mixed = {
        "display_name": "x",
        "role": "sales",
        "distributor_ids": [east.distributor.id, north.distributor.id],
    }
    assert (await client.post(BASE, json=mixed, headers=h)).status == 404
    ok = {"display_name": "x", "role": "distributor", "distributor_id": east.child.id}
    assert (await client.post(BASE, json=ok, headers=h)).status == 201
    # reads: own region's users only; admins and other managers are invisible (404)
    assert (await client.get(f"{BASE}/{north.dist_user.id}", headers=h)).status == 404
    assert (await client.get(f"{BASE}/{world.admin.id}", headers=h)).status == 404
    assert (await client.get(f"{BASE}/{north.manager.id}", headers=h)).status == 404
    assert (await client.get(f"{BASE}/{east.rep.id}", headers=h)).status == 200
    ids = {
        u["id"]
        for u in (await (await client.get(BASE, params={"page_size": 100}, headers=h)).json())["items"]
    }
    assert {east.dist_user.id, east.child_user.id, east.rep.id, east.manager.id} <= ids
    assert not ids & {north.dist_user.id, north.rep.id, world.admin.id, north.manager.id}
    # a manager cannot suspend users of another region, nor itself
    assert (await client.post(f"{BASE}/{north.rep.id}/suspend", headers=h)).status == 404
    assert (await client.post(f"{BASE}/{east.manager.id}/suspend", headers=h)).status == 409


async def test_manager_changes_only_in_region_assignments(client) -> None:
    world = await make_world()
    east, north = world.east, world.north
    await SalesAssignment.create(user=east.rep, distributor=north.distributor)
    resp = await client.patch(
        f"{BASE}/{east.rep.id}",
        json={"distributor_ids": [east.child.id]},
        headers=world.headers("east", "manager"),
    )
    assert resp.status == 200, await resp.text()
    have = set(await SalesAssignment.filter(user=east.rep).values_list("distributor_id", flat=True))
    assert have == {east.child.id, north.distributor.id}


async def test_suspend_user_ends_sessions_and_activate_restores(client) -> None:
    world = await make_world()
    h_rep = world.headers("east", "sales")
    assert (await client.get("/api/v1/me", headers=h_rep)).status == 200
    resp = await client.post(f"{BASE}/{world.east.rep.id}/suspend", headers=world.headers("east", "manager"))
    assert resp.status == 200 and (await resp.json())["status"] == "suspended"
    assert (await client.get("/api/v1/me", headers=h_rep)).status == 401
    login = await client.post(
        "/api/v1/auth/password-login", json={"username": world.east.rep.username, "password": PASSWORD}
    )
    assert login.status == 401
    assert await AuditLog.filter(action="user.suspend", entity_id=str(world.east.rep.id)).exists()
    await client.post(f"{BASE}/{world.east.rep.id}/activate", headers=world.headers("", "admin"))
    login = await client.post(
        "/api/v1/auth/password-login", json={"username": world.east.rep.username, "password": PASSWORD}
    )
    assert login.status == 200
    assert (await client.get("/api/v1/me", headers=h_rep)).status == 401  # old token stays dead


async def test_password_change_ends_sessions(client) -> None:
    world = await make_world()
    h = world.headers("east", "distributor")
    resp = await client.patch(
        f"{BASE}/{world.east.dist_user.id}",
        json={"password": "new-password-9"},
        headers=world.headers("", "admin"),
    )
    assert resp.status == 200
    assert (await client.get("/api/v1/me", headers=h)).status == 401
    log = await AuditLog.get(action="user.update", entity_id=str(world.east.dist_user.id))
    assert log.after["password"] == "changed" and "password_hash" not in log.after  # type: ignore[index,operator]


async def test_assignment_change_applies_at_once(client) -> None:
    world = await make_world()
    h = world.headers("east", "sales")
    new = await make_distributor(region="华东")
    before = await (await client.get("/api/v1/me", headers=h)).json()  # caches the scope
    assert new.id not in before["scope_distributor_ids"]
    ids = [world.east.distributor.id, new.id]
    resp = await client.patch(
        f"{BASE}/{world.east.rep.id}", json={"distributor_ids": ids}, headers=world.headers("", "admin")
    )
    assert resp.status == 200
    after = await (await client.get("/api/v1/me", headers=h)).json()
    assert set(after["scope_distributor_ids"]) == set(ids)


async def test_role_and_status_cannot_be_patched(client) -> None:
    world = await make_world()
    for body in ({"role": "admin"}, {"status": "active"}, {"failed_logins": 0}):
        resp = await client.patch(
            f"{BASE}/{world.east.rep.id}", json=body, headers=world.headers("", "admin")
        )
        assert resp.status == 400


async def test_invite_codes_one_time_and_scoped(client) -> None:
    world = await make_world()
    resp = await client.post(
        f"{BASE}/{world.east.dist_user.id}/invite-codes", headers=world.headers("east", "manager")
    )
    assert resp.status == 201
    out = await resp.json()
    assert len(out["code"]) == 8 and out["expires_at"] and out["user_id"] == world.east.dist_user.id
    assert await InviteCode.filter(code=out["code"], used_at__isnull=True).exists()
    assert await AuditLog.filter(action="invite_code.issue", entity_id=str(world.east.dist_user.id)).exists()
    resp = await client.post(
        f"{BASE}/{world.east.dist_user.id}/invite-codes", headers=world.headers("north", "manager")
    )
    assert resp.status == 404
    resp = await client.post(
        f"{BASE}/{world.east.dist_user.id}/invite-codes", headers=world.headers("east", "sales")
    )
    assert resp.status == 403
    codes = await asyncio.gather(
        *(
            client.post(f"{BASE}/{world.east.rep.id}/invite-codes", headers=world.headers("", "admin"))
            for _ in range(10)
        )
    )
    assert len({(await r.json())["code"] for r in codes}) == 10


async def test_invite_code_for_suspended_user_is_409(client) -> None:
    world = await make_world()
    user = await make_user("sales", status="suspended")
    resp = await client.post(f"{BASE}/{user.id}/invite-codes", headers=world.headers("", "admin"))
    assert resp.status == 409


# --- a manager changes accounts only of users wholly inside its regions --------------------------


async def _share_with_north(world, how: str) -> None:  # type: ignore[no-untyped-def]
    """Make the east rep also serve the north: assigned there, or the rep in charge there."""
    if how == "assignment":
        await SalesAssignment.create(user=world.east.rep, distributor=world.north.distributor)
    else:
        world.north.distributor.sales_rep_id = world.east.rep.id
        await world.north.distributor.save(update_fields=["sales_rep_id"])


@pytest.mark.parametrize("how", ["assignment", "sales_rep"])
async def test_manager_cannot_take_over_a_rep_who_also_serves_another_region(client, how) -> None:
    world = await make_world()
    await _share_with_north(world, how)
    rep, h = world.east.rep, world.headers("east", "manager")
    before = await User.get(id=rep.id)
    assert (await client.get(f"{BASE}/{rep.id}", headers=h)).status == 200  # still visible
    attempts = [
        ("PATCH", f"{BASE}/{rep.id}", {"password": "taken-over-1"}),
        ("PATCH", f"{BASE}/{rep.id}", {"username": "taken_over"}),
        ("PATCH", f"{BASE}/{rep.id}", {"display_name": "改名", "phone": "13800000000"}),
        ("POST", f"{BASE}/{rep.id}/invite-codes", None),
        ("POST", f"{BASE}/{rep.id}/suspend", None),
        ("POST", f"{BASE}/{rep.id}/activate", None),
    ]
    for method, url, body in attempts:
        resp = await client.request(method, url, json=body, headers=h)
        assert resp.status == 403, (method, url, await resp.text())
        assert (await resp.json())["error"]["code"] == "forbidden"
    after = await User.get(id=rep.id)
    assert (after.username, after.password_hash, after.display_name, after.phone, after.status) == (
        before.username,
        before.password_hash,
        before.display_name,
        before.phone,
        before.status,
    )
    assert not await InviteCode.filter(user_id=rep.id).exists()
    assert (await client.get("/api/v1/me", headers=world.headers("east", "sales"))).status == 200
    login = await client.post(
        "/api/v1/auth/password-login", json={"username": rep.username, "password": "taken-over-1"}
    )
    assert login.status == 401
    # the manager still runs its own region's side of the rep: its east assignments
    resp = await client.patch(f"{BASE}/{rep.id}", json={"distributor_ids": [world.east.child.id]}, headers=h)
    assert resp.status == 200, await resp.text()
    # an admin may do all of it
    resp = await client.patch(
        f"{BASE}/{rep.id}", json={"password": "reset-by-admin-1"}, headers=world.headers("", "admin")
    )
    assert resp.status == 200


async def test_manager_may_take_care_of_a_rep_wholly_in_its_regions(client) -> None:
    world = await make_world()
    rep, h = world.east.rep, world.headers("east", "manager")
    resp = await client.patch(f"{BASE}/{rep.id}", json={"password": "new-password-9"}, headers=h)
    assert resp.status == 200, await resp.text()
    login = await client.post(
        "/api/v1/auth/password-login", json={"username": rep.username, "password": "new-password-9"}
    )
    assert login.status == 200
    assert (await client.post(f"{BASE}/{rep.id}/invite-codes", headers=h)).status == 201
    assert (await client.post(f"{BASE}/{world.east.dist_user.id}/invite-codes", headers=h)).status == 201
    assert (await client.post(f"{BASE}/{rep.id}/suspend", headers=h)).status == 200
    assert (await client.post(f"{BASE}/{rep.id}/activate", headers=h)).status == 200


async def test_manager_cannot_widen_a_user_into_another_region(client) -> None:
    world = await make_world()
    east, north, h = world.east, world.north, world.headers("east", "manager")
    attempts = [
        (east.rep.id, {"distributor_ids": [east.distributor.id, north.distributor.id]}, 404),
        (east.dist_user.id, {"distributor_id": north.distributor.id}, 404),
        (east.rep.id, {"regions": ["华北"]}, 400),  # regions belong to managers only
        (east.manager.id, {"regions": ["华东", "华北"]}, 403),  # nor may it widen itself
    ]
    for user_id, body, status in attempts:
        resp = await client.patch(f"{BASE}/{user_id}", json=body, headers=h)
        assert resp.status == status, (body, await resp.text())
    assert set(await SalesAssignment.filter(user=east.rep).values_list("distributor_id", flat=True)) == {
        east.distributor.id,
        east.child.id,
    }
    assert (await User.get(id=east.dist_user.id)).distributor_id == east.distributor.id  # type: ignore[attr-defined]
    assert (await User.get(id=east.manager.id)).regions == ["华东"]
