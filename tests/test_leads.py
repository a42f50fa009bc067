"""Leads (客户报备): normalisation, conflicts, first-wins under concurrency, arbitration,
scope, expiry — over the real HTTP server on both backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.clock import now
from core.errors import ValidationError
from core.keys import CONFIG
from handlers import events
from handlers.leads import expire_leads, normalize_name, normalize_phone
from models.base import LeadStatus, UserRole
from models.lead import Lead
from models.user import SalesAssignment
from tests import factories
from tests.bola import cached_hash
from tests.factories import auth, make_user, make_world, token_for, uscc


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


TENCENT = "深圳市腾讯计算机系统有限公司"
TENCENT_OTHER_WAY = "深圳市腾讯计算机系统有限责任公司\u3000\u3000"


def test_normalize_name_folds_width_spaces_punctuation_and_suffixes() -> None:
    assert normalize_name(TENCENT_OTHER_WAY) == normalize_name(TENCENT) == TENCENT
    assert normalize_name("ＡＢＣ建材　有限公司") == "abc建材有限公司"
    assert normalize_name("上海 沪建·钢材（分公司）") == normalize_name("上海沪建钢材")
    assert normalize_name("华峰建材有限公司(杭州分公司)") == "华峰建材有限公司"
    # brackets that are not a branch keep their content
    assert normalize_name("腾讯科技（深圳）有限公司") == "腾讯科技深圳有限公司"


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("0086 13800138000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),
        ("021-6234 5678", "02162345678"),
    ],
)
def test_normalize_phone(raw: str, digits: str) -> None:
    assert normalize_phone(raw) == digits


@pytest.mark.parametrize("raw", ["12345", "138001380001", "phone", "1380013800"])
def test_normalize_phone_rejects_junk(raw: str) -> None:
    with pytest.raises(ValidationError):
        normalize_phone(raw)


def body(name: str = TENCENT, phone: str = "13800138000", **kw: object) -> dict[str, object]:
    return {"customer_name": name, "phone": phone, **kw}


async def post_lead(client, headers, **kw):  # type: ignore[no-untyped-def]
    resp = await client.post("/api/v1/leads", json=body(**kw), headers=headers)
    return resp.status, await resp.json()


async def test_register_protects_for_configured_days(client) -> None:
    world = await make_world()
    status, lead = await post_lead(
        client, world.headers("east", "sales"), project="南山总部", amount="120000"
    )
    assert status == 201, lead
    assert lead["status"] == "protected" and lead["review_reason"] is None
    assert lead["amount"] == "120000.00" and lead["region"] == "华东"
    row = await Lead.get(id=lead["id"])
    assert row.name_normalized == TENCENT and row.phone_digits == "13800138000"
    days = client.app[CONFIG].leads.protection_days
    assert abs(row.protected_until - (now() + timedelta(days=days))) < timedelta(minutes=1)


async def test_same_company_written_two_ways_conflicts_without_naming_the_owner(client) -> None:
    world = await make_world()
    status, _ = await post_lead(client, world.headers("east", "sales"))
    assert status == 201
    status, err = await post_lead(
        client, world.headers("north", "sales"), name=TENCENT_OTHER_WAY, phone="13900000000"
    )
    assert status == 409 and err["error"]["code"] == "lead_conflict"
    text = str(err)
    assert world.east.rep.display_name not in text and str(world.east.rep.id) not in str(
        err["error"]["details"]
    )
    assert await Lead.all().count() == 1


async def test_conflict_by_phone_and_by_uscc(client) -> None:
    world = await make_world()
    code = uscc()
    assert (await post_lead(client, world.headers("east", "sales"), uscc=code))[0] == 201
    status, err = await post_lead(
        client, world.headers("north", "sales"), name="完全不同的公司", phone="+86 138 0013 8000"
    )
    assert (status, err["error"]["code"]) == (409, "lead_conflict")
    status, err = await post_lead(
        client, world.headers("north", "sales"), name="另一家公司", phone="13700000000", uscc=code.lower()
    )
    assert (status, err["error"]["code"]) == (409, "lead_conflict")


async def test_arbitration_and_near_duplicates_wait_for_a_manager(client) -> None:
    world = await make_world()
    await post_lead(client, world.headers("east", "sales"), name="杭州西湖建筑工程有限公司")
    status, lead = await post_lead(
        client,
        world.headers("north", "sales"),
        name="杭州西湖建筑工程有限公司",
        phone="13911112222",
        arbitration=True,
    )
    assert status == 201 and lead["status"] == "pending_review" and lead["review_reason"] == "arbitration"
    assert lead["protected_until"] is None
    # one character off: not the same key, but near enough for a manager to look at
    status, lead = await post_lead(
        client, world.headers("north", "sales"), name="杭州西湖建筑工程有限公司一", phone="13911113333"
    )
    assert status == 201 and lead["status"] == "pending_review" and lead["review_reason"] == "near_duplicate"


async def test_own_duplicate_is_invalid_state_and_bad_input_is_400(client) -> None:
    world = await make_world()
    h = world.headers("east", "sales")
    assert (await post_lead(client, h))[0] == 201
    status, err = await post_lead(client, h, name=TENCENT_OTHER_WAY)
    assert (status, err["error"]["code"]) == (409, "invalid_state")
    for bad in (
        {"uscc": "91110000MA00000000"},  # wrong check digit
        {"phone": "12"},
        {"amount": 1.5},
        {"name": "  ·  "},
        {"colour": "red"},
    ):
        status, err = await post_lead(client, h, **bad)
        assert status == 400, (bad, err)
    assert await Lead.all().count() == 1


async def test_first_registration_wins_under_concurrency(client) -> None:
    world = await make_world()
    reps = [await make_user(UserRole.SALES, password_hash=None) for _ in range(12)]
    for rep in reps:
        await SalesAssignment.create(user=rep, distributor=world.east.distributor)
    tokens = [await token_for(rep) for rep in reps]
    names = [TENCENT if i % 2 else TENCENT_OTHER_WAY for i in range(len(reps))]
    results = await asyncio.gather(
        *(
            client.post("/api/v1/leads", json=body(name=n, phone=f"139{i:08d}"), headers=auth(t))
            for i, (n, t) in enumerate(zip(names, tokens, strict=True))
        )
    )
    statuses = sorted(r.status for r in results)
    assert statuses == [201] + [409] * (len(reps) - 1)
    assert await Lead.filter(status=LeadStatus.PROTECTED).count() == 1


async def test_scope_of_the_list(client) -> None:
    world = await make_world()
    _, east = await post_lead(client, world.headers("east", "sales"))
    _, north = await post_lead(
        client, world.headers("north", "sales"), name="北京某某建设集团", phone="13600000000"
    )
    _, dist = await post_lead(
        client, world.headers("east", "distributor"), name="宁波港建材", phone="13500000000"
    )

    async def ids(tenant: str, role: str) -> set[int]:
        resp = await client.get("/api/v1/leads", headers=world.headers(tenant, role))
        assert resp.status == 200
        return {x["id"] for x in (await resp.json())["items"]}

    assert await ids("east", "sales") == {east["id"]}
    assert await ids("east", "distributor") == {dist["id"]}
    assert await ids("east", "child") == set()
    assert await ids("east", "manager") == {east["id"], dist["id"]}
    assert await ids("north", "manager") == {north["id"]}
    assert await ids("", "admin") == {east["id"], north["id"], dist["id"]}
    # one object: another tenant gets 404, never 403
    resp = await client.get(f"/api/v1/leads/{east['id']}", headers=world.headers("north", "sales"))
    assert resp.status == 404
    resp = await client.get(f"/api/v1/leads/{east['id']}", headers=world.headers("east", "sales"))
    assert resp.status == 200


async def test_manager_arbitration_approve_and_reject(client) -> None:
    world = await make_world()
    _, first = await post_lead(client, world.headers("east", "sales"))
    _, pending = await post_lead(
        client, world.headers("east", "distributor"), name=TENCENT, phone="13311112222", arbitration=True
    )
    url = f"/api/v1/leads/{pending['id']}"
    # roles: reps and distributors may not review (403); another region's manager gets 404
    assert (await client.post(url + "/approve", headers=world.headers("east", "sales"))).status == 403
    assert (await client.post(url + "/approve", headers=world.headers("north", "manager"))).status == 404
    resp = await client.post(url + "/approve", json={}, headers=world.headers("east", "manager"))
    approved = await resp.json()
    assert resp.status == 200 and approved["status"] == "protected" and approved["protected_until"]
    old = await Lead.get(id=first["id"])
    assert old.status == LeadStatus.REJECTED and old.reject_reason == "经仲裁已判给其他报备人"
    resp = await client.post(url + "/approve", json={}, headers=world.headers("east", "manager"))
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "invalid_state"

    _, other = await post_lead(
        client, world.headers("east", "sales"), name=TENCENT, phone="13322223333", arbitration=True
    )
    url = f"/api/v1/leads/{other['id']}/reject"
    assert (
        await client.post(url, json={"reason": "x"}, headers=world.headers("north", "manager"))
    ).status == 404
    assert (await client.post(url, json={}, headers=world.headers("east", "manager"))).status == 400
    resp = await client.post(url, json={"reason": "归属已裁定"}, headers=world.headers("", "admin"))
    assert resp.status == 200 and (await resp.json())["reject_reason"] == "归属已裁定"


async def test_expire_leads_frees_the_customer(client) -> None:
    world = await make_world()
    _, lead = await post_lead(client, world.headers("east", "sales"))
    seen: list[int] = []

    async def on_expired(event: events.Event) -> None:
        seen.append(event.payload["lead_id"])

    events.subscribe("lead.expired")(on_expired)
    try:
        assert (await expire_leads())["expired"] == 0
        await Lead.filter(id=lead["id"]).update(protected_until=now() - timedelta(seconds=1))
        assert (await expire_leads())["expired"] == 1
        assert (await expire_leads())["expired"] == 0
    finally:
        events._subscribers["lead.expired"].remove(on_expired)
    assert seen == [lead["id"]]
    assert (await Lead.get(id=lead["id"])).status == LeadStatus.EXPIRED
    # the customer is free again: another rep may register it
    status, _ = await post_lead(client, world.headers("north", "sales"), name=TENCENT_OTHER_WAY)
    assert status == 201
