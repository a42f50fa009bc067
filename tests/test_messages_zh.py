"""Error messages users read are Chinese (a machine field name may lead them: "parent_id: ..."),
while `code` and `details` stay machine-readable."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.errors import user_text
from core.config import Config
from core.errors import InvalidState, ValidationError
from tests import factories
from tests.bola import cached_hash
from tests.factories import make_world
from tests.test_bot_support import Chat, bot_overrides

API = "/api/v1/admin"
ENGLISH = re.compile(r"[A-Za-z]{3,}")


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factories, "hash_password", cached_hash)


def _text(message: str) -> str:
    """The message without machine field names (leading "field: " or "（field）")."""
    return re.sub(r"^[a-z_.\[\]0-9]+: |（[a-z_/]+）", "", message)


async def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert not ENGLISH.search(_text(error["message"])), error["message"]
    return error


def _distributor(**kw: Any) -> dict[str, Any]:
    data = {
        "name": f"新经销商{factories.n()}有限公司",
        "uscc": factories.uscc(),
        "level": 1,
        "region": "华东",
        "credit_limit": "100000.00",
        "payment_terms": "monthly",
    }
    return data | kw


async def test_distributor_errors_are_chinese_with_field_and_details(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    resp = await client.post(f"{API}/distributors", json=_distributor(level=2), headers=h)
    error = await _error(resp, 400)
    assert error == {
        "code": "validation_error",
        "message": "parent_id: 二级经销商须指定一级经销商作为上级",
        "details": {"field": "parent_id"},
    }
    body = _distributor(level=2, parent_id=world.east.child.id)
    error = await _error(await client.post(f"{API}/distributors", json=body, headers=h), 400)
    assert error["message"] == "parent_id: 上级必须是一级经销商"
    body = _distributor(level=2, parent_id=world.north.distributor.id)
    error = await _error(await client.post(f"{API}/distributors", json=body, headers=h), 400)
    assert error["message"] == "parent_id: 上级必须在同一区域"
    taken = world.east.distributor.uscc
    resp = await client.post(f"{API}/distributors", json=_distributor(uscc=taken), headers=h)
    error = await _error(resp, 400)
    assert error["message"] == f"uscc: “{taken}”已存在" and error["details"] == {"field": "uscc"}
    error = await _error(await client.get(f"{API}/distributors/999999", headers=h), 404)
    assert error == {"code": "not_found", "message": "未找到该经销商", "details": {}}


async def test_not_found_names_the_object_in_chinese(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    for path, word in (
        ("products", "商品"),
        ("price-lists", "价格表"),
        ("promotions", "促销活动"),
        ("warehouses", "仓库"),
        ("users", "用户"),
        ("contracts", "合同"),
        ("commission-rules", "佣金规则"),
    ):
        error = await _error(await client.get(f"{API}/{path}/999999", headers=h), 404)
        assert error["message"] == f"未找到该{word}", path


async def test_catalog_and_commission_rule_errors_are_chinese(client) -> None:
    world = await make_world()
    manager = world.headers("east", "manager")
    body = {
        "name": "华东一级价",
        "region": "华东",
        "valid_from": "2026-01-01",
        "items": [{"sku": "X-404", "price": "10.00"}],
    }
    error = await _error(await client.post(f"{API}/price-lists", json=body, headers=manager), 400)
    assert error["message"] == "商品编码不存在：X-404"
    assert error["details"] == {"field": "items", "skus": ["X-404"]}
    body |= {"items": [{"sku": world.product.sku, "price": "10.00"}], "valid_to": "2025-12-31"}
    error = await _error(await client.post(f"{API}/price-lists", json=body, headers=manager), 400)
    assert "失效日期（valid_to）早于生效日期（valid_from）" in error["message"]

    rule = {
        "name": "华北返利",
        "beneficiary": "sales",
        "mode": "flat",
        "rate": "0.02",
        "scope": {"region": "华北"},
        "valid_from": "2026-01-01",
    }
    error = await _error(await client.post(f"{API}/commission-rules", json=rule, headers=manager), 403)
    assert error["message"] == "区域经理只能设置自己负责区域的佣金规则"
    rule |= {"scope": {"region": "华东"}, "rate": "1.5"}
    error = await _error(await client.post(f"{API}/commission-rules", json=rule, headers=manager), 400)
    assert "佣金比例须在 0 到 1 之间" in error["message"] and error["code"] == "validation_error"


_BAD = "abc"


@pytest.mark.parametrize(
    ("change", "field", "kind", "text"),
    [
        ({"name": None}, "name", "missing", "name: 必填"),
        ({"bogus": 1}, "bogus", "extra_forbidden", "bogus: 不允许的字段"),
        ({"parent_id": _BAD}, "parent_id", "int_parsing", "parent_id: 应为整数"),
        ({"name": "名" * 201}, "name", "string_too_long", "name: 最多 200 个字符"),
        ({"uscc": "1"}, "uscc", "string_too_short", "uscc: 至少 18 个字符"),
        ({"parent_id": 0}, "parent_id", "greater_than_equal", "parent_id: 不能小于 1"),
        ({"level": 3}, "level", "literal_error", "level: 应为以下之一：1、2"),
        ({"name": 5}, "name", "string_type", "name: 应为字符串"),
    ],
)
async def test_pydantic_errors_are_chinese(client, change, field, kind, text) -> None:
    world = await make_world()
    body = {k: v for k, v in (_distributor() | change).items() if v is not None}
    resp = await client.post(f"{API}/distributors", json=body, headers=world.headers("", "admin"))
    error = await _error(resp, 400)
    assert error["code"] == "validation_error" and error["message"] == text
    first = error["details"]["fields"][0]
    assert first == {"field": field, "message": text.split(": ", 1)[1], "type": kind}


async def test_query_and_body_framing_errors_are_chinese(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    error = await _error(await client.get(f"{API}/distributors?parent_id=x", headers=h), 400)
    assert error["message"] == "parent_id: 应为整数"
    assert error["details"]["fields"][0]["type"] == "int_parsing"
    hj = h | {"Content-Type": "application/json"}
    error = await _error(await client.post(f"{API}/distributors", data=b"{", headers=hj), 400)
    assert error == {"code": "validation_error", "message": "body: 请求体格式不正确，无法解析", "details": {}}
    error = await _error(await client.post(f"{API}/distributors", data=b"[]", headers=hj), 400)
    assert error["message"] == "body: 请求体必须是键值对象"
    error = await _error(await client.get(f"{API}/distributors"), 401)
    assert error["message"] == "请先登录"


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"uscc": "91110000MA00000000"}, "uscc: 统一社会信用代码无效（校验位不符）"),
        ({"phone": "12"}, "phone: 请填写有效的手机号或座机号"),
        ({"amount": 1.5}, 'amount: 金额应为字符串（如 "120000.00"）或整数'),
        ({"amount": "abc"}, "amount: 金额应为数字"),
        ({"customer_name": "  ·  "}, "customer_name: 客户名称过短"),
    ],
)
async def test_lead_errors_are_chinese(client, change, text) -> None:
    world = await make_world()
    body = {"customer_name": "深圳市腾讯计算机系统有限公司", "phone": "13800138000"} | change
    resp = await client.post("/api/v1/leads", json=body, headers=world.headers("east", "sales"))
    error = await _error(resp, 400)
    assert error["code"] == "validation_error" and error["message"] == text
    resp = await client.get("/api/v1/leads/999999", headers=world.headers("east", "sales"))
    assert (await _error(resp, 404))["message"] == "未找到该报备"


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"date_from": "2026-05-01", "date_to": "2026-04-01"}, "date_from: 开始日期不能晚于结束日期"),
        ({"date_from": "2020-01-01", "date_to": "2026-04-01"}, "date_from: 日期范围最多 3 年"),
        (
            {"date_from": "2026-13-01", "date_to": "2026-04-01"},
            "date_from: 日期格式应为 年-月-日（如 2026-01-31）",
        ),
    ],
)
async def test_report_range_errors_are_chinese(client, params, text) -> None:
    world = await make_world()
    resp = await client.get("/api/v1/reports/sales", params=params, headers=world.headers("", "admin"))
    error = await _error(resp, 400)
    assert error["code"] == "validation_error" and error["message"] == text


async def test_admin_user_errors_are_chinese(client) -> None:
    world = await make_world()
    h = world.headers("", "admin")
    body = {"display_name": "小王", "role": "sales", "distributor_id": world.east.distributor.id}
    error = await _error(await client.post(f"{API}/users", json=body, headers=h), 400)
    assert error["message"] == "distributor_id: 仅经销商角色可填写"
    assert error["details"] == {"field": "distributor_id"}


# --- a walk through real requests: every error a buyer, rep or manager can meet ---------------

CJK = re.compile(r"[\u4e00-\u9fff]")
SENTENCE = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z]{2,}){2,}")  # three English words in a row


def _chinese(message: str) -> None:
    assert CJK.search(message) and not SENTENCE.search(message), message


async def _walk(
    client: Any, method: str, path: str, headers: dict, status: int, code: str, **kw: Any
) -> dict:
    resp = await client.request(method, path, headers=headers, **kw)
    assert resp.status == status, (path, await resp.text())
    error = (await resp.json())["error"]
    assert error["code"] == code, (path, error)
    _chinese(error["message"])
    return error


async def test_walk_auth_and_framing_errors_are_chinese(client) -> None:
    world = await make_world()
    await _walk(client, "GET", "/api/v1/me", {"Authorization": "Bearer nope"}, 401, "unauthenticated")
    body = {"username": world.admin.username, "password": "wrong-password"}
    await _walk(client, "POST", "/api/v1/auth/password-login", {}, 401, "unauthenticated", json=body)
    body = {"bind_ticket": "x" * 20, "invite_code": "ABCDEFGH"}
    await _walk(client, "POST", "/api/v1/auth/bind", {}, 400, "validation_error", json=body)
    dist = world.headers("east", "distributor")
    await _walk(client, "GET", f"{API}/distributors", dist, 403, "forbidden")
    await _walk(client, "GET", "/api/v1/nope", dist, 404, "not_found")
    await _walk(client, "DELETE", "/api/v1/me", dist, 405, "method_not_allowed")


async def test_walk_order_errors_are_chinese(client) -> None:
    world = await make_world()
    dist, sku = world.headers("east", "distributor"), world.product.sku
    key = {"Idempotency-Key": "k-1"}
    line = {"lines": [{"sku": sku, "qty": 1}]}
    await _walk(client, "POST", "/api/v1/orders", dist, 400, "validation_error", json=line)
    bad_key = dist | {"Idempotency-Key": "has space"}
    await _walk(client, "POST", "/api/v1/orders", bad_key, 400, "validation_error", json=line)
    body = {"lines": [{"sku": "NOPE-1", "qty": 1}]}
    error = await _walk(client, "POST", "/api/v1/orders", dist | key, 400, "validation_error", json=body)
    assert error["details"]["fields"][0]["field"] == "lines.0.sku"
    _chinese(error["details"]["fields"][0]["message"])
    body = {"lines": [{"sku": sku, "qty": 500}]}
    await _walk(client, "POST", "/api/v1/orders", dist | key, 409, "insufficient_stock", json=body)
    body = {"lines": [{"sku": sku, "qty": 100_000}]}
    await _walk(client, "POST", "/api/v1/orders", dist | key, 409, "credit_limit_exceeded", json=body)
    body = {"lines": [{"sku": sku, "qty": 600_000}, {"sku": sku, "qty": 600_000}]}
    await _walk(client, "POST", "/api/v1/orders", dist | key, 400, "validation_error", json=body)
    body = {"distributor_id": world.east.child.id} | line
    await _walk(client, "POST", "/api/v1/orders", dist | key, 400, "validation_error", json=body)
    rep = world.headers("east", "sales")
    await _walk(client, "POST", "/api/v1/orders", rep | key, 400, "validation_error", json=line)
    resp = await client.post("/api/v1/orders", json=line, headers=dist | key)
    assert resp.status == 201, await resp.text()
    order = await resp.json()
    other = {"lines": [{"sku": sku, "qty": 2}]}
    await _walk(client, "POST", "/api/v1/orders", dist | key, 422, "idempotency_key_reused", json=other)
    oid = order["id"]
    error = await _walk(client, "POST", f"/api/v1/orders/{oid}/receive", dist, 409, "invalid_state", json={})
    assert "待审核" in error["message"], error
    await _walk(client, "POST", f"/api/v1/orders/{oid}/approve", dist, 403, "forbidden", json={})
    await _walk(client, "GET", "/api/v1/orders?status=bogus", dist, 400, "validation_error")
    await _walk(client, "GET", "/api/v1/orders/999999", dist, 404, "not_found")
    manager = world.headers("east", "manager")
    assert (await client.post(f"/api/v1/orders/{oid}/approve", json={}, headers=manager)).status == 200
    ship = {"lines": [{"sku": "NOPE-1", "qty": 1}]}
    path = f"/api/v1/orders/{oid}/shipments"
    await _walk(client, "POST", path, manager, 400, "validation_error", json=ship)
    ship = {"lines": [{"sku": sku, "qty": 5}]}
    await _walk(client, "POST", path, manager, 400, "validation_error", json=ship)
    assert (await client.post(path, json={"lines": [{"sku": sku, "qty": 1}]}, headers=manager)).status == 201
    await _walk(client, "POST", f"/api/v1/orders/{oid}/cancel", dist, 409, "invalid_state", json={})
    await _walk(client, "GET", "/api/v1/returns?status=bogus", manager, 400, "validation_error")


async def test_walk_stock_payment_statement_job_errors_are_chinese(client) -> None:
    world = await make_world()
    admin, sku, wh = world.headers("", "admin"), world.product.sku, world.company_warehouse.id
    adj = f"{API}/stock-adjustments"
    for change in ({"delta": 0}, {"delta": -1}, {"delta": 5, "reason": "outbound"}, {"sku": "NOPE-1"}):
        body = {"warehouse_id": wh, "sku": sku, "delta": 1, "reason": "inbound"} | change
        await _walk(client, "POST", adj, admin, 400, "validation_error", json=body)
    body = {"warehouse_id": wh, "sku": sku, "delta": -1000, "reason": "stocktake"}
    await _walk(client, "POST", adj, admin, 409, "insufficient_stock", json=body)
    body = {"warehouse_id": 999999, "sku": sku, "delta": 1, "reason": "inbound"}
    await _walk(client, "POST", adj, admin, 404, "not_found", json=body)
    body = {"warehouse_id": wh, "sku": sku, "min_qty": 10, "max_qty": 5}
    await _walk(client, "PUT", f"{API}/stock-thresholds", admin, 400, "validation_error", json=body)
    pay = {
        "distributor_id": world.east.distributor.id,
        "amount": "100.00",
        "paid_at": "2026-01-05",
        "ref": "R1",
    }
    for change in ({"amount": 1.5}, {"amount": "-1"}, {"amount": "1.234"}, {"paid_at": "yesterday"}):
        await _walk(client, "POST", f"{API}/payments", admin, 400, "validation_error", json=pay | change)
    await _walk(
        client, "POST", f"{API}/payments", admin, 404, "not_found", json=pay | {"distributor_id": 999999}
    )
    assert (await client.post(f"{API}/payments", json=pay, headers=admin)).status == 201
    await _walk(client, "POST", f"{API}/payments", admin, 409, "invalid_state", json=pay)
    await _walk(client, "POST", "/api/v1/statements/999999/confirm", admin, 404, "not_found", json={})
    await _walk(client, "POST", f"{API}/jobs/nope/run", admin, 404, "not_found", json={})
    body = {"period": "2026/11"}
    await _walk(
        client, "POST", f"{API}/jobs/commission_statements/run", admin, 400, "validation_error", json=body
    )


async def test_walk_import_errors_are_chinese(client) -> None:
    world = await make_world()
    admin = world.headers("", "admin") | {"Content-Type": "text/csv"}
    path = f"{API}/import/stock"
    for data in (b"", b"warehouse,sku,on_hand\n", b"warehouse,sku\nW,X\n", b"a,\x00b\n", b"\xff\xfe\xfa\x00"):
        await _walk(client, "POST", path, admin, 400, "validation_error", data=data)
    data = f"warehouse,sku,on_hand\n{world.company_warehouse.code},{world.product.sku},abc\nW9,X9,1\n"
    error = await _walk(client, "POST", path, admin, 400, "validation_error", data=data.encode())
    for row in error["details"]["errors"]:
        for text in row["errors"]:
            _chinese(text)


def test_pydantic_table_is_chinese_and_fills_its_context() -> None:
    from core.pydantic_zh import FALLBACK, ZH, zh_message

    for kind, text in ZH.items():
        _chinese(text.replace("{", "").replace("}", "")), kind
    assert zh_message({"type": "missing", "msg": "Field required"}) == "必填"
    assert zh_message({"type": "string_too_long", "msg": "", "ctx": {"max_length": 5}}) == "最多 5 个字符"
    assert (
        zh_message({"type": "literal_error", "msg": "", "ctx": {"expected": "'a' or 'b'"}})
        == "应为以下之一：'a'、'b'"
    )
    many = {"type": "literal_error", "msg": "", "ctx": {"expected": "'a', 'b' or 'c'"}}
    assert zh_message(many) == "应为以下之一：'a'、'b'、'c'"
    assert zh_message({"type": "something_new", "msg": "Some English"}) == FALLBACK
    custom = {"type": "date_out_of_range", "msg": "日期须在 1900-01-01 至 2999-12-31 之间"}
    assert zh_message(custom) == custom["msg"]  # our own error types speak Chinese already
    assert zh_message({"type": "value_error", "msg": "Value error, 金额应为数字"}) == "金额应为数字"
    assert zh_message({"type": "greater_than", "msg": "", "ctx": {}}) == FALLBACK  # missing ctx


def test_domain_errors_default_to_chinese() -> None:
    from core import errors
    from handlers.accounts import PlatformUnavailable
    from handlers.importer import ImportRejected

    for cls in (
        PlatformUnavailable,
        ImportRejected,
        *[c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.DomainError)],
    ):
        exc = cls()
        _chinese(exc.message)
        assert exc.to_json()["error"]["code"] == cls.code


# --- chat: the same errors as reps and buyers read them -----------------------------------------


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(bot_overrides())


def test_chat_names_the_item_and_field_in_chinese() -> None:
    fields = [{"field": "lines.0.qty", "message": "必填", "type": "missing"}]
    exc = ValidationError("lines.0.qty: 必填", {"fields": fields})
    assert user_text(exc) == "输入有误：第 1 项商品的数量：必填"
    exc = ValidationError("phone: 请填写有效的手机号或座机号", {"field": "phone"})
    assert user_text(exc) == "输入有误：电话：请填写有效的手机号或座机号"
    exc = ValidationError("ship_to.address: 最多 255 个字符", {"fields": [{"field": "ship_to.address"}]})
    assert user_text(exc) == "输入有误：收货信息的地址：最多 255 个字符"
    exc = ValidationError("weird.path: 格式不正确", {"field": "weird.path"})
    assert user_text(exc) == "输入有误：weird.path: 格式不正确"  # unknown names stay as they are
    exc = InvalidState("您已报备过该客户", {"reason": "duplicate"})
    assert user_text(exc) == "您已报备过该客户"


async def test_chat_error_replies_are_chinese(client) -> None:
    world = await make_world()
    chat = Chat(client)
    await chat.bind("o_rep", world.east.rep)
    lead = "报备 深圳市腾讯计算机系统有限公司 13800138000"
    assert "报备成功" in await chat.say("o_rep", lead)
    reply = await chat.say("o_rep", lead)
    assert reply == "您已报备过该客户", reply
    reply = await chat.say("o_rep", "订单 SO20990101-0001")
    _chinese(reply)
    await chat.bind("o_buyer", world.east.dist_user)
    reply = await chat.say("o_buyer", f"下单 {world.product.sku} 600000吨，{world.product.sku} 600000吨")
    assert "请确认订单" in reply, reply
    reply = await chat.say("o_buyer", "确认")  # the same SKU twice adds up to more than allowed
    assert reply == f"输入有误：第 2 项商品的数量：商品 {world.product.sku} 合计数量超过 1000000", reply


async def test_lead_reject_reason_of_old_rows_reads_in_chinese(client) -> None:
    from models.base import LeadStatus
    from models.lead import Lead

    world = await make_world()
    rep = world.east.rep
    lead = await Lead.create(
        customer_name="某某建设有限公司",
        name_normalized="某某建设",
        phone="13800138001",
        region="华东",
        owner=rep,
        status=LeadStatus.REJECTED,
        reject_reason="superseded by arbitration",  # as earlier versions stored it
    )
    resp = await client.get(f"/api/v1/leads/{lead.id}", headers=world.headers("east", "sales"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["reject_reason"] == "经仲裁已判给其他报备人"
