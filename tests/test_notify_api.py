"""Inbox, read marks, subscribe grants, job runs and alert rules over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from handlers.notify import notify
from models.base import NotificationStatus
from models.notification import AlertRule, JobRun, Notification, SubscriptionGrant
from tests import factories
from tests.bola import cached_hash
from tests.factories import make_world
from tests.factories_push import TEMPLATES


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


@pytest.fixture
def config(config):  # type: ignore[no-untyped-def]
    return config.with_overrides({"wechat": {"templates": TEMPLATES}})


async def _note(user_id: int, key: str, **kw):  # type: ignore[no-untyped-def]
    row = await notify(recipient_id=user_id, kind="order_status", title=key, body="b", dedupe_key=key, **kw)
    assert row is not None
    return row


async def test_inbox_lists_only_my_notifications_paginated(client):  # type: ignore[no-untyped-def]
    w = await make_world()
    for i in range(25):
        await _note(w.east.dist_user.id, f"mine-{i}")
    other = await _note(w.north.dist_user.id, "theirs")
    h = w.headers("east", "distributor")
    r = await client.get("/api/v1/notifications?page=2&page_size=10", headers=h)
    assert r.status == 200
    data = await r.json()
    assert data["total"] == 25 and data["page"] == 2 and len(data["items"]) == 10
    assert data["items"][0]["title"] == "mine-14"  # newest first
    r = await client.get("/api/v1/notifications?page_size=100", headers=h)
    assert other.id not in {it["id"] for it in (await r.json())["items"]}
    assert (await client.get("/api/v1/notifications?page_size=101", headers=h)).status == 400


async def test_read_marks_mine_and_404s_for_others(client):  # type: ignore[no-untyped-def]
    w = await make_world()
    mine = await _note(w.east.dist_user.id, "mine")
    theirs = await _note(w.north.dist_user.id, "theirs")
    h = w.headers("east", "distributor")
    r = await client.post(f"/api/v1/notifications/{mine.id}/read", headers=h)
    assert r.status == 200 and (await r.json())["read_at"] is not None
    unread = await (await client.get("/api/v1/notifications?unread=true", headers=h)).json()
    assert unread["total"] == 0
    for headers in (h, w.headers("", "admin"), w.headers("north", "manager")):
        r = await client.post(f"/api/v1/notifications/{theirs.id}/read", headers=headers)
        assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    assert (await Notification.get(id=theirs.id)).read_at is None


async def test_inbox_shows_failed_pushes_with_the_reason(client):  # type: ignore[no-untyped-def]
    w = await make_world()
    row = await _note(w.east.dist_user.id, "failed-one", channel="wecom")
    await Notification.filter(id=row.id).update(
        status=NotificationStatus.FAILED, last_error="81013 invalid user"
    )
    items = (
        await (await client.get("/api/v1/notifications", headers=w.headers("east", "distributor"))).json()
    )["items"]
    assert items[0]["status"] == "failed" and items[0]["delivery_note"] == "81013 invalid user"


async def test_subscriptions_record_grants_and_list_templates(client):  # type: ignore[no-untyped-def]
    w = await make_world()
    h = w.headers("east", "distributor")
    r = await client.get("/api/v1/subscriptions/templates", headers=h)
    assert r.status == 200
    assert {t["template_id"] for t in (await r.json())["templates"]} == set(TEMPLATES.values())
    body = {
        "template_ids": [TEMPLATES["order_status"], TEMPLATES["statement"]],
        "accepted": [TEMPLATES["order_status"]],
    }
    results = await asyncio.gather(
        *(client.post("/api/v1/subscriptions", json=body, headers=h) for _ in range(5))
    )
    assert all(r.status == 200 for r in results)
    grant = await SubscriptionGrant.get(user_id=w.east.dist_user.id, template_id=TEMPLATES["order_status"])
    assert grant.remaining == 5  # one per accepted prompt, none lost under concurrency
    assert not await SubscriptionGrant.exists(template_id=TEMPLATES["statement"])
    bad = [
        {"template_ids": ["nope"], "accepted": ["nope"]},
        {"template_ids": [TEMPLATES["statement"]], "accepted": [TEMPLATES["order_status"]]},
        {"template_ids": [TEMPLATES["statement"]], "accepted": [], "extra": 1},
    ]
    for b in bad:
        r = await client.post("/api/v1/subscriptions", json=b, headers=h)
        assert r.status == 400, b


async def test_job_run_endpoint_shape_roles_and_unknown(client):  # type: ignore[no-untyped-def]
    w = await make_world()
    r = await client.post("/api/v1/admin/jobs/contract_expiry/run", json={}, headers=w.headers("", "admin"))
    assert r.status == 200
    data = await r.json()
    assert set(data) == {"job", "started_at", "finished_at", "result"} and data["job"] == "contract_expiry"
    assert data["started_at"] <= data["finished_at"] and "drafts" in data["result"]
    assert await JobRun.filter(name="contract_expiry").count() == 1
    r = await client.post(
        "/api/v1/admin/jobs/order_completion/run", json={}, headers=w.headers("east", "manager")
    )
    assert r.status == 200
    r = await client.post("/api/v1/admin/jobs/nope/run", json={}, headers=w.headers("", "admin"))
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    for role in ("sales", "distributor"):
        r = await client.post("/api/v1/admin/jobs/low_stock/run", json={}, headers=w.headers("east", role))
        assert r.status == 403
    r = await client.post(
        "/api/v1/admin/jobs/commission_statements/run",
        json={"period": "2026-13"},
        headers=w.headers("", "admin"),
    )
    assert r.status == 400
    r = await client.post(
        "/api/v1/admin/jobs/commission_statements/run",
        json={"period": "2026-10"},
        headers=w.headers("", "admin"),
    )
    assert r.status == 200 and (await r.json())["result"]["period"] == "2026-10"


async def test_alert_rules_crud_and_manager_regions(client):  # type: ignore[no-untyped-def]
    w = await make_world()
    east, north, admin = w.headers("east", "manager"), w.headers("north", "manager"), w.headers("", "admin")
    body = {
        "kind": "low_stock",
        "channel": "inbox",
        "recipients": [w.east.rep.id],
        "params": {"cover_days": 3},
    }
    r = await client.post("/api/v1/admin/alert-rules", json=body, headers=east)
    assert r.status == 400  # a manager's rule needs one of its regions
    body["params"]["region"] = "华东"
    r = await client.post("/api/v1/admin/alert-rules", json=body, headers=east)
    assert r.status == 201
    rule = await r.json()
    assert rule["region"] == "华东" and rule["params"]["cover_days"] == 3
    assert (await client.post("/api/v1/admin/alert-rules", json=body, headers=north)).status == 404
    assert (await client.get(f"/api/v1/admin/alert-rules/{rule['id']}", headers=north)).status == 404
    listed = await (await client.get("/api/v1/admin/alert-rules", headers=north)).json()
    assert listed["total"] == 0
    r = await client.put(f"/api/v1/admin/alert-rules/{rule['id']}", json={"active": False}, headers=east)
    assert r.status == 200 and (await r.json())["active"] is False
    robot = {"kind": "low_stock", "channel": "dingtalk_robot", "recipients": ["nope"]}
    assert (await client.post("/api/v1/admin/alert-rules", json=robot, headers=admin)).status == 400
    unknown_user = {"kind": "low_stock", "recipients": [999999]}
    assert (await client.post("/api/v1/admin/alert-rules", json=unknown_user, headers=admin)).status == 400
    assert (await client.delete(f"/api/v1/admin/alert-rules/{rule['id']}", headers=north)).status == 404
    assert (await client.delete(f"/api/v1/admin/alert-rules/{rule['id']}", headers=admin)).status == 200
    assert not await AlertRule.exists(id=rule["id"])
