"""Leads across regions: the region comes from the owner (never from the body), arbitration
reaches the managers of every region involved, an approval never supersedes a lead outside
the approver's scope, and the chat's 报备 runs the API's use-case with the API's rules.

Two regions (east 华东, north 华北), each with its manager and its rep (tests/factories)."""

from __future__ import annotations

import pytest

from core.config import Config
from core.errors import Forbidden
from handlers.auth import build_actor
from handlers.fanout import fan_out_events
from handlers.leads import LeadIn, register_lead
from models.base import LeadStatus, UserRole
from models.lead import Lead
from models.notification import Notification
from models.user import SalesAssignment
from tests.factories import World, auth, make_user, make_world, token_for
from tests.test_bot_support import (
    Chat,
    bot_overrides,
    fast_hashes,  # noqa: F401  (autouse)
)

TENCENT = "深圳市腾讯计算机系统有限公司"
SUPERSEDED = "经仲裁已判给其他报备人"


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(bot_overrides())


async def post_lead(client, headers, name: str = TENCENT, phone: str = "13800138000", **kw):  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/api/v1/leads", json={"customer_name": name, "phone": phone, **kw}, headers=headers
    )
    return resp.status, await resp.json()


async def notes(user_id: int) -> list[Notification]:
    await fan_out_events()  # what the next outbox drain pass does first
    return list(await Notification.filter(recipient_id=user_id, kind="lead").order_by("id"))


# --- the region comes from the owner ----------------------------------------------------


async def test_body_region_outside_the_owners_regions_is_refused(client) -> None:
    world = await make_world()
    # the reporter's case: north's rep writes 华东 to send its arbitration to east's manager
    for who in ("sales", "distributor"):
        status, err = await post_lead(client, world.headers("north", who), region="华东")
        assert (status, err["error"]["code"]) == (400, "validation_error"), err
        assert err["error"]["details"]["field"] == "region"
    assert await Lead.all().count() == 0
    status, lead = await post_lead(client, world.headers("north", "sales"))
    assert status == 201 and lead["region"] == "华北"
    status, lead = await post_lead(
        client,
        world.headers("north", "distributor"),
        name="北京某某建设集团",
        phone="13600000000",
        region="华北",
    )
    assert status == 201 and lead["region"] == "华北"


async def test_rep_of_several_regions_names_one_of_them(client) -> None:
    world = await make_world()
    await SalesAssignment.create(user=world.east.rep, distributor=world.north.distributor)
    h = world.headers("east", "sales")  # the token's Actor is built per request: sees both now
    status, err = await post_lead(client, h)
    assert (status, err["error"]["code"]) == (400, "validation_error")
    assert set(err["error"]["details"]["regions"]) == {"华东", "华北"}
    assert (await post_lead(client, h, region="华南"))[0] == 400
    assert await Lead.all().count() == 0
    status, lead = await post_lead(client, h, region="华北")
    assert status == 201 and lead["region"] == "华北"
    # and the lead is in front of the right manager
    resp = await client.get(f"/api/v1/leads/{lead['id']}", headers=world.headers("north", "manager"))
    assert resp.status == 200
    resp = await client.get(f"/api/v1/leads/{lead['id']}", headers=world.headers("east", "manager"))
    assert resp.status == 404


async def test_rep_without_distributors_cannot_register(client) -> None:
    rep = await make_user(UserRole.SALES)
    status, err = await post_lead(client, auth(await token_for(rep)))
    assert (status, err["error"]["code"]) == (403, "forbidden")
    assert await Lead.all().count() == 0


# --- arbitration across regions ---------------------------------------------------------


async def _cross_region_pending(client, world: World) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """east's rep protects the customer; north's rep asks for arbitration (a 华北 lead)."""
    status, east = await post_lead(client, world.headers("east", "sales"))
    assert status == 201
    status, pending = await post_lead(
        client, world.headers("north", "sales"), phone="13911112222", arbitration=True
    )
    assert status == 201 and pending["status"] == "pending_review" and pending["region"] == "华北"
    return east, pending


async def test_cross_region_arbitration_reaches_both_regions_managers(client) -> None:
    world = await make_world()
    _, pending = await _cross_region_pending(client, world)
    north_notes = await notes(world.north.manager.id)
    assert [n.payload["lead_id"] for n in north_notes] == [pending["id"]]
    east_notes = await notes(world.east.manager.id)
    assert len(east_notes) == 1 and "跨区域" in east_notes[0].title
    assert "华北" in east_notes[0].body
    assert len(await notes(world.admin.id)) == 1  # only an admin (or a two-region manager) decides
    assert await notes(world.east.rep.id) == []  # the owner is not told who contests it


async def test_manager_cannot_supersede_another_regions_lead(client) -> None:
    world = await make_world()
    east, pending = await _cross_region_pending(client, world)
    before = len(await notes(world.east.manager.id))
    resp = await client.post(
        f"/api/v1/leads/{pending['id']}/approve", json={}, headers=world.headers("north", "manager")
    )
    err = await resp.json()
    assert resp.status == 409 and err["error"]["code"] == "invalid_state", err
    assert err["error"]["details"] == {"reason": "cross_region", "regions": ["华东"]}
    assert "华东" in err["error"]["message"] and "管理员" in err["error"]["message"]
    # nothing changed: the east lead keeps its protection, the newcomer still waits
    assert (await Lead.get(id=east["id"])).status == LeadStatus.PROTECTED
    assert (await Lead.get(id=pending["id"])).status == LeadStatus.PENDING_REVIEW
    # east's manager knows (once, however often north's manager tries)
    resp = await client.post(
        f"/api/v1/leads/{pending['id']}/approve", json={}, headers=world.headers("north", "manager")
    )
    assert resp.status == 409
    assert len(await notes(world.east.manager.id)) == max(before, 1)
    # north's manager may still reject its own region's newcomer: the status quo stays
    resp = await client.post(
        f"/api/v1/leads/{pending['id']}/reject",
        json={"reason": "客户已由其他区域跟进"},
        headers=world.headers("north", "manager"),
    )
    assert resp.status == 200 and (await resp.json())["status"] == "rejected"
    assert (await Lead.get(id=east["id"])).status == LeadStatus.PROTECTED


async def test_conflict_appearing_after_registration_is_escalated_at_approval(client) -> None:
    world = await make_world()
    _, north = await post_lead(client, world.headers("north", "sales"))
    status, pending = await post_lead(
        client, world.headers("north", "distributor"), phone="13911114444", arbitration=True
    )
    assert status == 201 and pending["status"] == "pending_review"
    assert await notes(world.east.manager.id) == []  # a 华北-only conflict stays in 华北
    # meanwhile east's rep protects a customer with the pending lead's phone (no protected
    # lead has it yet, so that is no conflict at registration)
    status, east = await post_lead(
        client, world.headers("east", "sales"), name="宁波某某贸易有限公司", phone="13911114444"
    )
    assert status == 201 and east["status"] == "protected"
    resp = await client.post(
        f"/api/v1/leads/{pending['id']}/approve", json={}, headers=world.headers("north", "manager")
    )
    assert resp.status == 409 and (await resp.json())["error"]["details"]["regions"] == ["华东"]
    assert len(await notes(world.east.manager.id)) == 1
    for lead in (north, east):
        assert (await Lead.get(id=lead["id"])).status == LeadStatus.PROTECTED


async def test_admin_approval_supersedes_and_tells_the_other_owners_manager(client) -> None:
    world = await make_world()
    east, pending = await _cross_region_pending(client, world)
    resp = await client.post(
        f"/api/v1/leads/{pending['id']}/approve", json={}, headers=world.headers("", "admin")
    )
    assert resp.status == 200 and (await resp.json())["status"] == "protected"
    old = await Lead.get(id=east["id"])
    assert old.status == LeadStatus.REJECTED and old.reject_reason == SUPERSEDED
    owner = await notes(world.east.rep.id)
    assert len(owner) == 1 and owner[0].body.endswith(f"报备未通过（{SUPERSEDED}）")
    manager = [n for n in await notes(world.east.manager.id) if n.payload["lead_id"] == east["id"]]
    assert len(manager) == 1 and SUPERSEDED in manager[0].body


async def test_manager_of_both_regions_may_arbitrate(client) -> None:
    world = await make_world()
    east, pending = await _cross_region_pending(client, world)
    both = await make_user(UserRole.MANAGER, regions=["华东", "华北"])
    resp = await client.post(
        f"/api/v1/leads/{pending['id']}/approve", json={}, headers=auth(await token_for(both))
    )
    assert resp.status == 200
    assert (await Lead.get(id=east["id"])).status == LeadStatus.REJECTED
    assert any(n.payload["lead_id"] == east["id"] for n in await notes(world.east.manager.id))


async def test_same_region_arbitration_is_unchanged(client) -> None:
    world = await make_world()
    _, first = await post_lead(client, world.headers("east", "sales"))
    _, pending = await post_lead(
        client, world.headers("east", "distributor"), phone="13311112222", arbitration=True
    )
    resp = await client.post(
        f"/api/v1/leads/{pending['id']}/approve", json={}, headers=world.headers("east", "manager")
    )
    assert resp.status == 200
    assert (await Lead.get(id=first["id"])).reject_reason == SUPERSEDED
    assert await notes(world.north.manager.id) == []


# --- the chat runs the same use-case with the same rules ---------------------------------


async def test_register_lead_use_case_refuses_staff(db) -> None:
    world = await make_world()
    for user in (world.east.manager, world.admin):
        with pytest.raises(Forbidden):
            await register_lead(await build_actor(user), LeadIn(customer_name=TENCENT, phone="13800138000"))
    assert await Lead.all().count() == 0


async def test_manager_registering_by_chat_creates_nothing(client) -> None:
    world = await make_world()
    chat = Chat(client, "wecom")
    await chat.bind("east_manager", world.east.manager)
    reply = await chat.say("east_manager", f"报备 {TENCENT} 13800138000 南山总部")
    assert "报备成功" not in reply and "权限" in reply, reply
    admin = Chat(client, "dingtalk")
    await admin.bind("the_admin", world.admin)
    assert "权限" in await admin.say("the_admin", f"报备 {TENCENT} 13800138000")
    assert await Lead.all().count() == 0
    # the API answers the same refusal
    status, err = await post_lead(client, world.headers("east", "manager"))
    assert (status, err["error"]["code"]) == (403, "forbidden")


async def test_chat_region_follows_the_same_rules(client) -> None:
    world = await make_world()
    await SalesAssignment.create(user=world.east.rep, distributor=world.north.distributor)
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    ask = await chat.say("o_rep", f"报备 {TENCENT} 13800138000 南山总部")
    assert "区域" in ask and "华北" in ask and "华东" in ask and "报备成功" not in ask
    assert await Lead.all().count() == 0
    assert "区域" in await chat.say("o_rep", f"报备 {TENCENT} 13800138000 区域:华南")
    ok = await chat.say("o_rep", f"报备 {TENCENT} 13800138000 南山总部 区域：华北")
    assert "报备成功" in ok
    lead = await Lead.get()
    assert lead.region == "华北" and lead.project == "南山总部" and lead.owner_id == world.east.rep.id  # type: ignore[attr-defined]
