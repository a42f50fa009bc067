"""Order admission over HTTP: prices frozen, stock reserved, credit checked, idempotency,
bad input refused with nothing changed, who may order for whom."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from core import runtime as rt
from core.clock import now, today
from core.money import money
from models.audit import AuditLog
from models.base import (
    DistributorStatus,
    MovementReason,
    PaymentTerms,
    ProductStatus,
    PromotionKind,
    UserRole,
)
from models.distributor import Distributor
from models.order import Order
from models.product import Promotion
from models.stock import Stock, StockMovement
from models.user import SalesAssignment
from tests.factories import (
    auth,
    make_distributor,
    make_price_list,
    make_product,
    make_stock,
    make_warehouse,
    token_for,
)
from tests.factories_orders import assert_consistent, new_key, quick_user, shop, stock_of, world_state

API = "/api/v1"


async def _shop(client: Any, **kw: Any) -> dict[str, Any]:
    s = await shop(**kw)
    s["h"] = auth(await token_for(s["user"]))
    return s


async def order(client: Any, headers: dict, body: Any, key: str | None = "new") -> tuple[int, Any]:
    h = dict(headers)
    if key is not None:
        h["Idempotency-Key"] = new_key() if key == "new" else key
    resp = await client.post(f"{API}/orders", json=body, headers=h)
    return resp.status, await resp.json()


def one_line(product: Any, qty: int) -> dict:
    return {"lines": [{"sku": product.sku, "qty": qty}]}


def with_config(**sections: dict) -> None:
    r = rt.runtime()
    r.config = r.config.with_overrides(sections)


# --- the happy path ---------------------------------------------------------------------------


async def test_order_freezes_price_reserves_stock_and_writes_the_ledger(client) -> None:
    s = await _shop(client, on_hand=20, price="12.50")
    status, body = await order(client, s["h"], {**one_line(s["product"], 3), "note": "尽快"})
    assert status == 201, body
    assert re.fullmatch(rf"SO{today().strftime('%Y%m%d')}\d{{4}}", body["number"])
    assert body["status"] == "pending_review" and body["distributor_id"] == s["distributor"].id
    [line] = body["lines"]
    assert (line["sku"], line["qty"], line["unit_price"], line["amount"], line["shipped_qty"]) == (
        s["product"].sku,
        3,
        "12.50",
        "37.50",
        0,
    )
    assert body["total_amount"] == "37.50" and body["note"] == "尽快"
    assert await stock_of(s["warehouse"], s["product"]) == (20, 3)
    mv = await StockMovement.filter(reason=MovementReason.RESERVE).get()
    assert (mv.ref_type, mv.ref_id, mv.delta_reserved, mv.reserved_after) == ("order", str(body["id"]), 3, 3)
    assert await AuditLog.filter(action="order.placed", entity_id=str(body["id"])).exists()
    # A later price change does not touch the admitted order.
    await make_price_list({s["product"]: Decimal("99")}, priority=50)
    got = await (await client.get(f"{API}/orders/{body['id']}", headers=s["h"])).json()
    assert got["lines"][0]["unit_price"] == "12.50" and got["total_amount"] == "37.50"
    await assert_consistent()


async def test_the_admission_answer_is_the_order_as_read_back(client) -> None:
    """The 201 is built from the values written (no read-back); it must be exactly what
    GET /orders/{id} shows, auto-approval and a split line included."""
    s = await _shop(client, on_hand=2, price="7.25")
    other = await make_warehouse(region="华南")
    await make_stock(other, s["product"], 5)
    with_config(orders={"auto_approve_max_amount": "1000"})
    status, body = await order(client, s["h"], {**one_line(s["product"], 6), "note": "拆单"})
    assert status == 201 and body["status"] == "approved" and len(body["lines"]) == 2, body
    got = await (await client.get(f"{API}/orders/{body['id']}", headers=s["h"])).json()
    assert {**got, "shipments": None, "returns": None} == body


async def test_order_numbers_increase_within_the_day(client) -> None:
    s = await _shop(client)
    numbers = [(await order(client, s["h"], one_line(s["product"], 1)))[1]["number"] for _ in range(3)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


async def test_ship_to_defaults_to_the_distributor_and_may_be_given(client) -> None:
    s = await _shop(client)
    await Distributor.filter(id=s["distributor"].id).update(
        contact="王五", phone="13800000000", address="上海"
    )
    _, body = await order(client, s["h"], one_line(s["product"], 1))
    assert body["ship_to"] == {"contact": "王五", "phone": "13800000000", "address": "上海"}
    ship_to = {"contact": "李四", "phone": "13900000000", "address": "杭州西湖区"}
    _, body = await order(client, s["h"], {**one_line(s["product"], 1), "ship_to": ship_to})
    assert body["ship_to"] == ship_to


async def test_duplicate_skus_are_merged_into_one_line(client) -> None:
    s = await _shop(client)
    sku = s["product"].sku
    status, body = await order(client, s["h"], {"lines": [{"sku": sku, "qty": 2}, {"sku": sku, "qty": 3}]})
    assert status == 201
    assert [(x["sku"], x["qty"]) for x in body["lines"]] == [(sku, 5)]
    assert await stock_of(s["warehouse"], s["product"]) == (50, 5)


# --- idempotency ------------------------------------------------------------------------------


async def test_same_key_same_body_replays_the_first_answer(client) -> None:
    s = await _shop(client)
    key = new_key()
    resp1 = await client.post(
        f"{API}/orders", json=one_line(s["product"], 2), headers={**s["h"], "Idempotency-Key": key}
    )
    # Same body, other key order and spacing: the same request.
    sku = s["product"].sku
    raw = '{ "lines" : [ { "qty": 2, "sku": "' + sku + '" } ] }'
    resp2 = await client.post(
        f"{API}/orders",
        data=raw,
        headers={**s["h"], "Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert resp1.status == resp2.status == 201
    assert await resp1.read() == await resp2.read()
    assert resp2.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in resp1.headers
    assert await Order.all().count() == 1
    assert await stock_of(s["warehouse"], s["product"]) == (50, 2)


async def test_a_retry_of_a_finished_order_draws_no_number_and_takes_no_stock(client) -> None:
    """Retries replay before any work (the kv hint); without the hint (kv flushed) the key's
    unique record still decides, at the price of a skipped number."""
    s = await _shop(client)
    key = new_key()
    first = await order(client, s["h"], one_line(s["product"], 2), key)
    for _ in range(3):
        assert await order(client, s["h"], one_line(s["product"], 2), key) == first
    second = await order(client, s["h"], one_line(s["product"], 1))
    assert int(second[1]["number"][-4:]) == int(first[1]["number"][-4:]) + 1  # no gap
    await rt.runtime().kv.flush_namespace()  # the hint is gone: the database decides
    assert await order(client, s["h"], one_line(s["product"], 2), key) == first
    assert await Order.all().count() == 2
    assert await stock_of(s["warehouse"], s["product"]) == (50, 3)
    await assert_consistent()


async def test_same_key_different_body_is_422(client) -> None:
    s = await _shop(client)
    key = new_key()
    assert (await order(client, s["h"], one_line(s["product"], 2), key))[0] == 201
    before = await world_state()
    status, body = await order(client, s["h"], one_line(s["product"], 3), key)
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    assert await world_state() == before


async def test_keys_are_per_user(client) -> None:
    s = await _shop(client)
    other = await quick_user(UserRole.DISTRIBUTOR, distributor=s["distributor"])
    key = new_key()
    a = await order(client, s["h"], one_line(s["product"], 1), key)
    b = await order(client, auth(await token_for(other)), one_line(s["product"], 1), key)
    assert a[0] == b[0] == 201 and a[1]["id"] != b[1]["id"]


async def test_a_refused_request_can_be_retried_with_its_key(client) -> None:
    s = await _shop(client, on_hand=2)
    key = new_key()
    status, body = await order(client, s["h"], one_line(s["product"], 5), key)
    assert status == 409 and body["error"]["code"] == "insufficient_stock"
    await Stock.filter(warehouse=s["warehouse"]).update(on_hand=10)
    await StockMovement.create(
        warehouse=s["warehouse"],
        product=s["product"],
        reason=MovementReason.INBOUND,
        ref_type="test",
        ref_id="t",
        delta_on_hand=8,
        delta_reserved=0,
        on_hand_after=10,
        reserved_after=0,
    )
    status, body = await order(client, s["h"], one_line(s["product"], 5), key)
    assert status == 201


async def test_expired_key_runs_again(client) -> None:
    from models.order import IdempotencyRecord

    s = await _shop(client)
    key = new_key()
    first = (await order(client, s["h"], one_line(s["product"], 1), key))[1]
    await IdempotencyRecord.filter(key=key).update(expires_at=now() - timedelta(seconds=1))
    second = (await order(client, s["h"], one_line(s["product"], 1), key))[1]
    assert second["id"] != first["id"]


async def test_keys_are_kept_at_least_a_day(client) -> None:
    from models.order import IdempotencyRecord

    s = await _shop(client)
    key = new_key()
    await order(client, s["h"], one_line(s["product"], 1), key)
    rec = await IdempotencyRecord.get(key=key)
    assert rec.expires_at - rec.created_at >= timedelta(hours=24)


# --- bad input: 400 naming the field, nothing changed -----------------------------------------


BAD_ORDERS = [
    ({"lines": [{"sku": "@", "qty": 0}]}, "lines.0.qty"),
    ({"lines": [{"sku": "@", "qty": -3}]}, "lines.0.qty"),
    ({"lines": [{"sku": "@", "qty": 1_000_001}]}, "lines.0.qty"),
    ({"lines": [{"sku": "@", "qty": 10**30}]}, "lines.0.qty"),
    ({"lines": [{"sku": "@", "qty": 1.5}]}, "lines.0.qty"),
    ({"lines": [{"sku": "@", "qty": "3"}]}, "lines.0.qty"),
    ({"lines": [{"sku": "@", "qty": True}]}, "lines.0.qty"),
    ({"lines": [{"sku": "@"}]}, "lines.0.qty"),
    ({"lines": [{"qty": 1}]}, "lines.0.sku"),
    ({"lines": [{"sku": "", "qty": 1}]}, "lines.0.sku"),
    ({"lines": []}, "lines"),
    ({"lines": "@"}, "lines"),
    ({"lines": [["@", 1]]}, "lines.0"),
    ({}, "lines"),
    ({"lines": [{"sku": "@", "qty": 1}] * 101}, "lines"),
    ({"lines": [{"sku": "@", "qty": 1, "price": "0.01"}]}, "lines.0.price"),
    ({"lines": [{"sku": "@", "qty": 1, "unit_price": "0.01"}]}, "lines.0.unit_price"),
    ({"lines": [{"sku": "@", "qty": 1}], "total_amount": "1.00"}, "total_amount"),
    ({"lines": [{"sku": "@", "qty": 1}], "status": "approved"}, "status"),
    ({"lines": [{"sku": "@", "qty": 600_000}, {"sku": "@", "qty": 600_000}]}, "lines.1.qty"),
    ({"lines": [{"sku": "NO-SUCH-SKU", "qty": 1}]}, "lines.0.sku"),
    ({"lines": [{"sku": "@", "qty": 1}], "ship_to": {"contact": "x"}}, "ship_to.phone"),
    ({"lines": [{"sku": "@", "qty": 1}], "distributor_id": "abc"}, "distributor_id"),
]


async def test_bad_order_input_is_400_naming_the_field_and_changes_nothing(client) -> None:
    s = await _shop(client)
    before = await world_state()
    for body, field in BAD_ORDERS:
        status, answer = await order(client, s["h"], _fill(body, s["product"].sku))
        assert status == 400, (body, answer)
        assert answer["error"]["code"] == "validation_error"
        fields = [f["field"] for f in answer["error"]["details"].get("fields", [])]
        assert field in fields, (body, answer)
    assert await world_state() == before


def _fill(value: Any, sku: str) -> Any:
    if value == "@":
        return sku
    if isinstance(value, dict):
        return {k: _fill(v, sku) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, sku) for v in value]
    return value


async def test_missing_or_bad_idempotency_key_is_400(client) -> None:
    s = await _shop(client)
    before = await world_state()
    for key in (None, "", "has space", "x" * 256):
        status, body = await order(client, s["h"], one_line(s["product"], 1), key=key)
        assert status == 400 and body["error"]["details"]["field"] == "Idempotency-Key", (key, body)
    assert await world_state() == before


async def test_malformed_json_is_400(client) -> None:
    s = await _shop(client)
    before = await world_state()
    resp = await client.post(
        f"{API}/orders", data=b"{not json", headers={**s["h"], "Idempotency-Key": new_key()}
    )
    assert resp.status == 400
    assert await world_state() == before


async def test_inactive_product_and_missing_price_are_400(client) -> None:
    s = await _shop(client)
    inactive = await make_product(status=ProductStatus.INACTIVE)
    await make_price_list({inactive: "5"})
    await make_stock(s["warehouse"], inactive, on_hand=10)
    unpriced = await make_product()
    await make_stock(s["warehouse"], unpriced, on_hand=10)
    before = await world_state()
    body = {"lines": [{"sku": s["product"].sku, "qty": 1}, {"sku": inactive.sku, "qty": 1}]}
    status, answer = await order(client, s["h"], body)
    assert status == 400 and answer["error"]["details"]["fields"][0]["field"] == "lines.1.sku"
    status, answer = await order(client, s["h"], one_line(unpriced, 1))
    assert status == 400 and answer["error"]["details"]["fields"][0]["field"] == "lines.0.sku"
    assert await world_state() == before


async def test_suspended_distributor_cannot_be_ordered_for(client) -> None:
    s = await _shop(client)
    dist = await make_distributor(status=DistributorStatus.SUSPENDED)
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=dist)
    before = await world_state()
    status, body = await order(
        client, auth(await token_for(rep)), {**one_line(s["product"], 1), "distributor_id": dist.id}
    )
    assert status == 400 and body["error"]["details"]["fields"][0]["field"] == "distributor_id"
    assert await world_state() == before


# --- stock and credit ---------------------------------------------------------------------------


async def test_all_shortfalls_are_reported_together_and_nothing_is_reserved(client) -> None:
    s = await _shop(client, on_hand=5)
    other = await make_product()
    await make_price_list({other: "3"})
    await make_stock(s["warehouse"], other, on_hand=1)
    third = await make_product()
    await make_price_list({third: "3"})
    await make_stock(s["warehouse"], third, on_hand=100)
    before = await world_state()
    body = {
        "lines": [
            {"sku": third.sku, "qty": 10},
            {"sku": s["product"].sku, "qty": 6},
            {"sku": other.sku, "qty": 2},
        ]
    }
    status, answer = await order(client, s["h"], body)
    assert status == 409 and answer["error"]["code"] == "insufficient_stock"
    items = {i["sku"]: (i["requested"], i["available"]) for i in answer["error"]["details"]["items"]}
    assert items == {s["product"].sku: (6, 5), other.sku: (2, 1)}
    assert await world_state() == before


async def test_credit_limit_counts_receivables_and_open_orders(client) -> None:
    s = await _shop(client, price="10.00", credit_limit="100")
    assert (await order(client, s["h"], one_line(s["product"], 4)))[0] == 201  # 40 open
    from handlers.finance import add_receivable  # the ledger's one writer (keeps the exposure)

    await add_receivable(s["distributor"].id, "shipment", money("30"), "test", "1", occurred_at=now())
    before = await world_state()
    status, body = await order(client, s["h"], one_line(s["product"], 4))  # 40 + 30 + 40 > 100
    assert status == 409 and body["error"]["code"] == "credit_limit_exceeded"
    assert (
        body["error"]["details"]["exposure"] == "70.00" and body["error"]["details"]["available"] == "30.00"
    )
    assert await world_state() == before
    assert (await order(client, s["h"], one_line(s["product"], 3)))[0] == 201  # exactly 100


async def test_prepay_distributors_have_no_credit_check(client) -> None:
    s = await _shop(client, price="10.00", credit_limit="0")
    await Distributor.filter(id=s["distributor"].id).update(payment_terms=PaymentTerms.PREPAY)
    status, body = await order(client, s["h"], one_line(s["product"], 5))
    assert status == 201 and body["status"] == "pending_review"


async def test_auto_approval_below_the_configured_amount(client) -> None:
    s = await _shop(client, price="10.00")
    status, body = await order(client, s["h"], one_line(s["product"], 5))
    assert body["status"] == "pending_review"  # 0 = never
    with_config(orders={"auto_approve_max_amount": "50"})
    status, body = await order(client, s["h"], one_line(s["product"], 5))
    assert status == 201 and body["status"] == "approved" and body["approved_at"]
    status, body = await order(client, s["h"], one_line(s["product"], 6))
    assert body["status"] == "pending_review"


async def test_orders_are_rate_limited_per_user(client) -> None:
    s = await _shop(client)
    with_config(limits={"orders_per_user_per_min": 2})
    for _ in range(2):
        assert (await order(client, s["h"], one_line(s["product"], 1)))[0] == 201
    h = {**s["h"], "Idempotency-Key": new_key()}
    resp = await client.post(f"{API}/orders", json=one_line(s["product"], 1), headers=h)
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    other = await quick_user(UserRole.DISTRIBUTOR, distributor=s["distributor"])
    assert (await order(client, auth(await token_for(other)), one_line(s["product"], 1)))[0] == 201


# --- warehouses and promotions ----------------------------------------------------------------


async def test_warehouse_rule_region_first_then_own_then_others_and_split(client) -> None:
    dist = await make_distributor(region="华东")
    user = await quick_user(UserRole.DISTRIBUTOR, distributor=dist)
    h = auth(await token_for(user))
    product = await make_product()
    await make_price_list({product: "1"})
    other_region = await make_warehouse(region="华北")
    own = await make_warehouse(region="华北", distributor=dist)
    region = await make_warehouse(region="华东")
    foreign = await make_warehouse(region="华东", distributor=await make_distributor(region="华东"))
    for wh, qty in ((other_region, 100), (own, 6), (region, 4), (foreign, 1000)):
        await make_stock(wh, product, on_hand=qty)
    _, a = await order(client, h, one_line(product, 3))  # the region's company warehouse has it all
    assert [(x["warehouse_id"], x["qty"]) for x in a["lines"]] == [(region.id, 3)]
    _, b = await order(client, h, one_line(product, 5))  # region has 1 left: own has it all
    assert [(x["warehouse_id"], x["qty"]) for x in b["lines"]] == [(own.id, 5)]
    _, c = await order(client, h, one_line(product, 50))  # neither has it all: the other company warehouse
    assert [(x["warehouse_id"], x["qty"]) for x in c["lines"]] == [(other_region.id, 50)]
    assert (await stock_of(foreign, product)) == (1000, 0)
    await assert_consistent()


async def test_split_line_takes_everything_in_rule_order(client) -> None:
    dist = await make_distributor(region="华东")
    h = auth(await token_for(await quick_user(UserRole.DISTRIBUTOR, distributor=dist)))
    product = await make_product()
    await make_price_list({product: "2.50"})
    region = await make_warehouse(region="华东")
    own = await make_warehouse(region="华东", distributor=dist)
    other = await make_warehouse(region="华南")
    for wh, qty in ((region, 4), (own, 3), (other, 10)):
        await make_stock(wh, product, on_hand=qty)
    status, body = await order(client, h, one_line(product, 12))
    assert status == 201
    assert [(x["warehouse_id"], x["qty"]) for x in body["lines"]] == [
        (region.id, 4),
        (own.id, 3),
        (other.id, 5),
    ]
    assert body["total_amount"] == "30.00"
    assert [await stock_of(w, product) for w in (region, own, other)] == [(4, 4), (3, 3), (10, 5)]
    await assert_consistent()


async def test_discount_and_buy_n_get_m_promotions(client) -> None:
    s = await _shop(client, on_hand=100, price="10.00")
    day = today()
    await Promotion.create(
        name="九折",
        kind=PromotionKind.DISCOUNT,
        product=s["product"],
        discount_rate=Decimal("0.9"),
        valid_from=day - timedelta(days=1),
        valid_to=day,
    )
    await Promotion.create(
        name="买十送一",
        kind=PromotionKind.BUY_N_GET_M,
        category=s["product"].category,
        buy_n=10,
        get_m=1,
        valid_from=day,
        valid_to=None,
    )
    await Promotion.create(  # expired: ignored
        name="五折",
        kind=PromotionKind.DISCOUNT,
        product=s["product"],
        discount_rate=Decimal("0.5"),
        valid_from=day - timedelta(days=9),
        valid_to=day - timedelta(days=1),
    )
    status, body = await order(client, s["h"], one_line(s["product"], 21))
    assert status == 201, body
    [line] = body["lines"]
    assert (line["qty"], line["free_qty"], line["unit_price"], line["discount"], line["amount"]) == (
        21,
        2,
        "10.00",
        "21.00",
        "189.00",
    )
    assert body["total_amount"] == "189.00" and body["discount_amount"] == "21.00"
    assert await stock_of(s["warehouse"], s["product"]) == (100, 23)


# --- who orders for whom ------------------------------------------------------------------------


async def test_who_may_order_for_which_distributor(client) -> None:
    s = await _shop(client)
    p = s["product"]
    other = await make_distributor(region="华东")
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=s["distributor"])
    rep_h = auth(await token_for(rep))
    admin_h = auth(await token_for(await quick_user(UserRole.ADMIN)))
    # A rep orders for an assigned distributor; an unassigned one is 404; none named is 400.
    status, body = await order(client, rep_h, {**one_line(p, 1), "distributor_id": s["distributor"].id})
    assert status == 201 and body["distributor_id"] == s["distributor"].id and body["placed_by_id"] == rep.id
    assert (await order(client, rep_h, {**one_line(p, 1), "distributor_id": other.id}))[0] == 404
    assert (await order(client, rep_h, one_line(p, 1)))[0] == 400
    # A distributor user may name itself, never another.
    assert (await order(client, s["h"], {**one_line(p, 1), "distributor_id": s["distributor"].id}))[0] == 201
    status, body = await order(client, s["h"], {**one_line(p, 1), "distributor_id": other.id})
    assert status == 400 and body["error"]["details"]["fields"][0]["field"] == "distributor_id"
    # Staff must name one.
    assert (await order(client, admin_h, one_line(p, 1)))[0] == 400
    assert (await order(client, admin_h, {**one_line(p, 1), "distributor_id": other.id}))[0] == 201
    assert (await order(client, admin_h, {**one_line(p, 1), "distributor_id": 999_999}))[0] == 404


async def test_place_order_use_case_for_the_chat_bot(client) -> None:
    from handlers.auth import build_actor
    from handlers.ordering import place_order

    s = await _shop(client)
    rep = await quick_user(UserRole.SALES)
    await SalesAssignment.create(user=rep, distributor=s["distributor"])
    actor = await build_actor(rep)
    out = await place_order(
        actor,
        idempotency_key="chat-1",
        body={"lines": [{"sku": s["product"].sku, "qty": 2}]},
        distributor_id=s["distributor"].id,
    )
    again = await place_order(
        actor,
        idempotency_key="chat-1",
        body={"lines": [{"sku": s["product"].sku, "qty": 2}]},
        distributor_id=s["distributor"].id,
    )
    assert out.id == again.id and out.total_amount == Decimal("20.00")
