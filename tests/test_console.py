"""The manager console (/console/): sessions, CSRF, pages and actions, and scope.

Every console page is in `console.app.collect_pages()`; `CASES` below gives each one a probe,
and `test_every_console_page_has_a_case` fails for a page without one (like test_bola)."""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.app import collect_pages
from console.session import COOKIE
from core.clock import BUSINESS_TZ
from handlers import leads, returns, statements
from handlers.auth import build_actor
from handlers.leads import LeadIn
from handlers.notify import notify
from handlers.order_io import LineIn, ReturnIn
from handlers.statements import close_period
from models.base import LeadStatus, OrderStatus, ReceivableKind, StatementStatus
from models.commission import Statement
from models.lead import Lead
from models.notification import Notification
from models.order import Order, ReturnRequest
from tests.factories import PASSWORD, World, make_world, token_for
from tests.factories_commission import at, make_receivable
from tests.factories_orders import make_order

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"test-secret"  # conftest's [auth] secret


def csrf(token: str) -> str:
    return hmac.new(SECRET, b"console-csrf:" + token.encode(), hashlib.sha256).hexdigest()


def session(token: str, *, with_csrf: bool = True, htmx: bool = False) -> dict[str, str]:
    headers = {"Cookie": f"{COOKIE}={token}"}
    if with_csrf:
        headers["X-CSRF-Token"] = csrf(token)
    if htmx:
        headers["HX-Request"] = "true"
    return headers


async def get(client: Any, path: str, token: str) -> tuple[int, str]:
    async with client.get(path, headers=session(token), allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def post(client: Any, path: str, token: str, data: dict | None = None, **kw: Any) -> tuple[int, str]:
    headers = session(token, **kw)
    async with client.post(path, data=data or {}, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def pending_lead_pair(
    world: World, name: str = "杭州云栖科技有限公司", seq: int = 1111
) -> tuple[Lead, Lead]:
    """A protected lead of east's rep and a conflicting one of east's distributor sent to
    arbitration (pending_review)."""
    rep = await build_actor(world.east.rep)
    dist = await build_actor(world.east.dist_user)
    first = await leads.register_lead(rep, LeadIn(customer_name=name, phone=f"1380000{seq:04d}"))
    second = await leads.register_lead(
        dist, LeadIn(customer_name=name, phone=f"1390000{2 * seq:04d}", arbitration=True)
    )
    assert second.status == LeadStatus.PENDING_REVIEW
    return await Lead.get(id=first.id), await Lead.get(id=second.id)


# --- sessions -------------------------------------------------------------------------------


async def test_login_page_is_chinese_with_csp(client) -> None:
    async with client.get("/console/login") as resp:
        body = await resp.text()
        assert resp.status == 200
        assert "管理后台" in body and "用户名" in body and "密码" in body
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Frame-Options"] == "DENY"


async def test_anonymous_is_sent_to_login(client) -> None:
    async with client.get("/console", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/console/"
    async with client.get("/console/orders?status=approved", allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"].startswith("/console/login?next=%2Fconsole%2Forders")
    async with client.post("/console/orders/1/approve", headers={"HX-Request": "true"}) as resp:
        assert resp.status == 401 and resp.headers["HX-Redirect"] == "/console/login"


async def test_manager_login_sets_httponly_lax_cookie_then_logout_ends_it(client) -> None:
    world = await make_world()
    form = {"username": world.east.manager.username, "password": PASSWORD, "next": "/console/orders"}
    async with client.post("/console/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/console/orders"
        cookie = resp.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/console"
        token = cookie.value
    status, body = await get(client, "/console/", token)
    assert status == 200 and "工作台" in body and "待审核订单" in body
    assert f'"X-CSRF-Token": "{csrf(token)}"' in body  # htmx hx-headers on <body>
    status, _ = await post(client, "/console/logout", token)
    assert status == 303
    async with client.get("/console/", headers=session(token), allow_redirects=False) as resp:
        assert resp.status == 303  # the token was revoked, like POST /auth/logout
    # the same token no longer works on the API either: one session system
    async with client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 401


async def test_login_redirect_target_stays_in_the_console(client) -> None:
    world = await make_world()
    form = {"username": world.admin.username, "password": PASSWORD, "next": "//evil.example/x"}
    async with client.post("/console/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/console/"


async def test_wrong_password_locks_out_like_password_login(client) -> None:
    world = await make_world()
    form = {"username": world.east.manager.username, "password": "wrong"}
    statuses = []
    for _ in range(6):
        async with client.post("/console/login", data=form) as resp:
            statuses.append(resp.status)
            body = await resp.text()
    assert statuses[0] == 401 and statuses[-1] == 429
    assert "稍后再试" in body and "Retry-After" in resp.headers


@pytest.mark.parametrize("role", ["distributor", "sales"])
async def test_distributors_and_reps_are_refused(client, role: str) -> None:
    world = await make_world()
    user = {"distributor": world.east.dist_user, "sales": world.east.rep}[role]
    async with client.post("/console/login", data={"username": user.username, "password": PASSWORD}) as resp:
        assert resp.status == 403 and "仅限经理和管理员" in await resp.text()
        assert COOKIE not in resp.cookies
    token = await token_for(user)  # a valid API token put into the cookie by hand
    order = await make_order(world.east.distributor, product=world.product)
    for page in collect_pages().pages:
        if not page.auth:
            continue
        path = _concrete(page.path, order.id)
        call = get if page.method == "GET" else post
        status, body = await call(client, "/console" + path, token)
        assert status == 403, f"{page.method} {path}: {status}"
        assert "仅限经理和管理员" in body
    assert (await Order.get(id=order.id)).status == OrderStatus.PENDING_REVIEW


async def test_write_without_csrf_is_403_and_changes_nothing(client) -> None:
    world = await make_world()
    token = await token_for(world.east.manager)
    order = await make_order(world.east.distributor, product=world.product)
    path = f"/console/orders/{order.id}/approve"
    status, body = await post(client, path, token, with_csrf=False)
    assert status == 403 and "CSRF" in body
    async with client.post(
        path, headers={**session(token, with_csrf=False), "X-CSRF-Token": csrf("another-token")}
    ) as resp:
        assert resp.status == 403
    assert (await Order.get(id=order.id)).status == OrderStatus.PENDING_REVIEW
    # the form field works as well as the header (plain form posts without JavaScript)
    status, _ = await post(client, path, token, {"csrf_token": csrf(token)}, with_csrf=False)
    assert status == 303 and (await Order.get(id=order.id)).status == OrderStatus.APPROVED


# --- 工作台 ------------------------------------------------------------------------------------


async def test_workbench_counts_and_chart_data(client) -> None:
    world = await make_world()
    await make_order(world.east.distributor, product=world.product)
    await make_order(world.east.distributor, product=world.product, qty=2, status="shipped")
    await make_order(world.north.distributor, product=world.product)  # not east's
    await pending_lead_pair(world)
    status, body = await get(client, "/console/", await token_for(world.east.manager))
    assert status == 200
    assert re.search(r'id="todo-orders">1<', body) and re.search(r'id="todo-leads">1<', body)
    for label in ("待审核退货", "有异议的对账单", "逾期应收", "30 天内到期合同", "月度销售额"):
        assert label in body
    data = json.loads(re.search(r'id="sales-data">(.*?)</script>', body, re.S).group(1))  # type: ignore[union-attr]
    assert data["values"] and sum(data["values"]) == 200.0  # the shipped order: 2 x 100.00
    top = json.loads(re.search(r'id="top-data">(.*?)</script>', body, re.S).group(1))  # type: ignore[union-attr]
    assert top["labels"] == [world.east.distributor.name] and top["values"] == [200.0]
    aging = json.loads(re.search(r'id="aging-data">(.*?)</script>', body, re.S).group(1))  # type: ignore[union-attr]
    assert aging["labels"][0] == "未到期" and sum(aging["values"]) == 200.0
    assert '<script src="/console/static/vendor/echarts.common.min.js"' in body


# --- 订单 -------------------------------------------------------------------------------------


async def test_order_list_filters(client) -> None:
    world = await make_world()
    a = await make_order(world.east.distributor, product=world.product)
    b = await make_order(world.east.child, product=world.product, status="approved")
    token = await token_for(world.east.manager)
    _, body = await get(client, "/console/orders", token)
    assert a.number in body and b.number in body and "待审核" in body and "已审核" in body
    _, body = await get(client, "/console/orders?status=approved", token)
    assert b.number in body and a.number not in body
    _, body = await get(client, f"/console/orders?distributor_id={world.east.distributor.id}", token)
    assert a.number in body and b.number not in body
    _, body = await get(client, f"/console/orders?number={b.number}", token)
    assert b.number in body and a.number not in body
    day = a.created_at.astimezone(BUSINESS_TZ).date().isoformat()  # the business day
    _, body = await get(client, f"/console/orders?date_from=2020-01-01&date_to={day}", token)
    assert a.number in body
    _, body = await get(client, "/console/orders?date_to=2020-01-01", token)
    assert a.number not in body and "没有符合条件的订单" in body
    status, body = await get(client, "/console/orders?date_from=昨天", token)
    assert status == 400 and "年-月-日" in body


async def test_order_detail_approve_and_reject(client) -> None:
    world = await make_world()
    order = await make_order(world.east.distributor, product=world.product, qty=3)
    token = await token_for(world.east.manager)
    status, body = await get(client, f"/console/orders/{order.id}", token)
    assert status == 200 and order.number in body and world.product.sku in body
    assert "商品明细" in body and "发货记录" in body and "操作记录" in body and "下单" in body
    status, body = await post(client, f"/console/orders/{order.id}/approve", token, htmx=True)
    assert status == 200 and "订单已审核通过" in body and "审核通过" in body
    assert (await Order.get(id=order.id)).status == OrderStatus.APPROVED
    status, body = await post(client, f"/console/orders/{order.id}/approve", token, htmx=True)
    assert status == 409 and "HX-Retarget" not in body  # the message goes to #flash

    other = await make_order(world.east.distributor, product=world.product)
    status, body = await post(client, f"/console/orders/{other.id}/reject", token, {"reason": " "}, htmx=True)
    assert status == 400 and "请填写驳回原因" in body
    reason = {"reason": "价格有误"}
    status, body = await post(client, f"/console/orders/{other.id}/reject", token, reason, htmx=True)
    assert status == 200 and "订单已驳回" in body and "价格有误" in body
    assert (await Order.get(id=other.id)).status == OrderStatus.REJECTED


async def test_ship_with_carrier_and_tracking(client) -> None:
    world = await make_world()
    order = await make_order(world.east.distributor, product=world.product, qty=5, status="approved")
    token = await token_for(world.east.manager)
    _, body = await get(client, f"/console/orders/{order.id}", token)
    assert "确认发货" in body and "待发 5" in body
    path = f"/console/orders/{order.id}/ship"
    status, body = await post(client, path, token, {f"qty:{world.product.sku}": "0"}, htmx=True)
    assert status == 400 and "发货数量" in body
    form = {f"qty:{world.product.sku}": "2", "carrier": "顺丰速运", "tracking_no": "SF1234567890"}
    status, body = await post(client, path, token, form, htmx=True)
    assert status == 200 and "已发货" in body and "SF1234567890" in body and "已部分发货" in body
    form[f"qty:{world.product.sku}"] = "3"
    status, body = await post(client, path, token, form, htmx=True)
    assert status == 200 and (await Order.get(id=order.id)).status == OrderStatus.SHIPPED


async def received_return(world: World, qty: int = 1) -> Any:
    """A received east order with a requested return of `qty` units."""
    order = await make_order(world.east.distributor, product=world.product, qty=3, status="received")
    buyer = await build_actor(world.east.dist_user)
    body = ReturnIn(lines=[LineIn(sku=world.product.sku, qty=qty)], reason="包装破损")
    return await returns.request_return(buyer, order.id, body)


async def test_return_review_approve_receive_and_reject(client) -> None:
    world = await make_world()
    req = await received_return(world)
    token = await token_for(world.east.manager)
    status, body = await get(client, "/console/returns", token)
    assert status == 200 and req.order_number in body and "包装破损" in body
    status, body = await get(client, "/console/", token)
    assert re.search(r'id="todo-returns">1<', body)
    status, body = await post(client, f"/console/returns/{req.id}/approve", token, htmx=True)
    assert status == 200 and "已同意退货" in body and "确认收货入库" in body
    status, body = await post(client, f"/console/returns/{req.id}/receive", token, htmx=True)
    assert status == 200 and "退货已入库" in body and "退货入账" in body
    assert (await returns.get_return(await build_actor(world.admin), req.id)).status == "received"
    other = await received_return(world)
    status, _ = await post(client, f"/console/returns/{other.id}/reject", token, {"reason": ""}, htmx=True)
    assert status == 400
    status, body = await post(client, f"/console/returns/{other.id}/reject", token, {"reason": "超出退货期"})
    assert status == 303


_months = itertools.count(1)


async def disputed_statement(world: World, reason: str = "3月回款未入账") -> Statement:
    """A receivables statement of east's distributor, disputed by its user (a new month each call)."""
    month = f"2025-{next(_months):02d}"
    await make_receivable(world.east.distributor, ReceivableKind.SHIPMENT, "1000.00", at(f"{month}-10"))
    await close_period(month)
    st = await Statement.get(kind="receivables", period=month, distributor_id=world.east.distributor.id)
    await statements.dispute_statement(await build_actor(world.east.dist_user), st.id, reason)
    return st


async def test_statements_list_detail_and_resolving_a_dispute(client) -> None:
    world = await make_world()
    st = await disputed_statement(world)
    token = await token_for(world.east.manager)
    _, body = await get(client, "/console/", token)
    assert re.search(r'id="todo-statements">1<', body)
    status, body = await get(client, "/console/statements?status=disputed", token)
    assert status == 200 and "应收对账单" in body and "有异议" in body and "3月回款未入账" in body
    status, body = await get(client, "/console/statements?period=三月", token)
    assert status == 400 and "年-月" in body
    status, body = await get(client, f"/console/statements/{st.id}", token)
    assert status == 200 and "期末余额" in body and "1000.00" in body and "提出异议" in body
    path = f"/console/statements/{st.id}/resolve"
    status, _ = await post(client, path, token, {"note": ""}, htmx=True)
    assert status == 400
    status, body = await post(client, path, token, {"note": "已核实，回款下月入账"}, htmx=True)
    assert status == 200 and "异议已处理" in body and "待确认" in body and "已核实，回款下月入账" in body
    assert (await Statement.get(id=st.id)).status == StatementStatus.OPEN
    status, _ = await post(client, path, token, {"note": "再次处理"}, htmx=True)
    assert status == 409
    # the subject can confirm it now, through the API as before
    await statements.confirm_statement(await build_actor(world.east.dist_user), st.id)


async def east_alert(world: World, title: str = "库存不足：测试商品") -> Any:
    return await notify(
        recipient_id=world.east.manager.id, kind="low_stock", title=title, body="可用 3 件", dedupe_key=title
    )


async def test_alerts_inbox_mark_read_and_all_read(client) -> None:
    world = await make_world()
    first = await east_alert(world)
    await east_alert(world, "合同即将到期：HT-001")
    north = world.north.manager.id
    await notify(recipient_id=north, kind="low_stock", title="北方的提醒", body="x", dedupe_key="n")
    token = await token_for(world.east.manager)
    status, body = await get(client, "/console/alerts", token)
    assert status == 200 and "库存不足：测试商品" in body and "合同即将到期" in body
    assert "北方的提醒" not in body
    status, body = await post(client, f"/console/alerts/{first.id}/read", token, htmx=True)
    assert status == 200 and body.count('class="link-dark">标为已读') == 1
    status, body = await post(client, "/console/alerts/read-all", token, htmx=True)
    assert status == 200 and "已将 1 条提醒标为已读" in body
    _, body = await get(client, "/console/alerts?unread=1", token)
    assert "没有提醒" in body


async def xlsx_rows(client: Any, path: str, token: str) -> list[tuple[Any, ...]]:
    from openpyxl import load_workbook

    async with client.get(path, headers=session(token)) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
        assert "filename*=UTF-8''" in resp.headers["Content-Disposition"]
        data = await resp.read()
    return list(load_workbook(io.BytesIO(data), read_only=True).active.iter_rows(values_only=True))


async def test_every_list_exports_xlsx_with_chinese_headers_numbers_and_totals(client) -> None:
    world = await make_world()
    a = await make_order(world.east.distributor, product=world.product, qty=2)
    await make_order(world.east.distributor, product=world.product, qty=3)
    await make_order(world.north.distributor, product=world.product)  # not east's
    await received_return(world)
    await disputed_statement(world)
    await east_alert(world, "=HYPERLINK(1)")
    token = await token_for(world.east.manager)
    rows = await xlsx_rows(client, "/console/orders?format=xlsx", token)
    assert rows[0][:5] == ("订单号", "经销商", "状态", "件数", "订单金额（元）")
    body = rows[1:-1]
    assert {r[0] for r in body} >= {a.number} and all(r[1] == world.east.distributor.name for r in body)
    assert rows[-1][0] == "合计（3 条）" and rows[-1][3] == 8 and rows[-1][4] == 800  # numbers, not text
    local = a.created_at.astimezone(BUSINESS_TZ).replace(tzinfo=None, second=0, microsecond=0)
    placed = next(r for r in body if r[0] == a.number)[6]
    assert placed.replace(second=0, microsecond=0) == local  # Asia/Shanghai wall time
    rows = await xlsx_rows(client, f"/console/orders?number={a.number}&format=xlsx", token)
    assert len(rows) == 3  # header, one order, totals
    rows = await xlsx_rows(client, "/console/returns?status=&format=xlsx", token)
    assert rows[0][0] == "订单号" and rows[1][1] == "待审核" and rows[-1][0].startswith("合计")
    rows = await xlsx_rows(client, "/console/statements?format=xlsx", token)
    assert rows[0][:3] == ("月份", "类型", "对象") and rows[1][4] == "有异议" and rows[-1][3] == 1000
    rows = await xlsx_rows(client, "/console/alerts?format=xlsx", token)
    assert rows[0][1] == "标题" and rows[1][1] == "'=HYPERLINK(1)"  # never a formula


# --- 报备仲裁 ----------------------------------------------------------------------------------


async def test_lead_arbitration_side_by_side_and_approve(client) -> None:
    world = await make_world()
    protected, pending = await pending_lead_pair(world)
    token = await token_for(world.east.manager)
    status, body = await get(client, "/console/leads", token)
    assert status == 200 and "申请报备（待仲裁）" in body and "已受保护的报备" in body
    assert "13800001111" in body and "13900002222" in body  # both leads, side by side
    assert world.east.rep.display_name in body and world.east.dist_user.display_name in body
    status, body = await post(client, f"/console/leads/{pending.id}/approve", token, htmx=True)
    assert status == 200 and "已批准" in body and "没有待仲裁的报备" in body
    assert (await Lead.get(id=pending.id)).status == LeadStatus.PROTECTED
    assert (await Lead.get(id=protected.id)).status == LeadStatus.REJECTED


async def test_lead_reject_needs_a_reason(client) -> None:
    world = await make_world()
    _, pending = await pending_lead_pair(world)
    token = await token_for(world.admin)
    status, _ = await post(client, f"/console/leads/{pending.id}/reject", token, {"reason": ""}, htmx=True)
    assert status == 400
    status, _ = await post(client, f"/console/leads/{pending.id}/reject", token, {"reason": "重复报备"})
    assert status == 303
    lead = await Lead.get(id=pending.id)
    assert lead.status == LeadStatus.REJECTED and lead.reject_reason == "重复报备"


# --- scope: every page and action, as another region's manager -----------------------------


@dataclass(frozen=True)
class Case:
    """`probe` builds east's object and returns (path, form, marker): `marker` is text of
    east's object that a list page must show to east and never to north."""

    probe: Callable[[World], Awaitable[tuple[str, dict[str, str], str | None]]]


async def _order_probe(world: World, suffix: str = "") -> tuple[str, dict[str, str], str | None]:
    order = await make_order(world.east.distributor, product=world.product)
    return f"/orders/{order.id}{suffix}", {"reason": "测试"}, order.number


async def _shippable_probe(world: World) -> tuple[str, dict[str, str], str | None]:
    order = await make_order(world.east.distributor, product=world.product, status="approved")
    return f"/orders/{order.id}/ship", {f"qty:{world.product.sku}": "1", "carrier": "顺丰"}, None


async def _return_probe(
    world: World, suffix: str, approved: bool = False
) -> tuple[str, dict[str, str], str | None]:
    req = await received_return(world)
    if approved:
        await returns.approve_return(await build_actor(world.admin), req.id)
    return f"/returns/{req.id}{suffix}", {"reason": "测试"}, None


async def _statement_probe(world: World, suffix: str) -> tuple[str, dict[str, str], str | None]:
    st = await disputed_statement(world)
    return f"/statements/{st.id}{suffix}", {"note": "测试"}, None


async def _alert_probe(world: World) -> tuple[str, dict[str, str], str | None]:
    row = await east_alert(world, f"提醒 {next(_names)}")
    return f"/alerts/{row.id}/read", {}, None


_names = itertools.count(1)


async def _lead_probe(world: World, suffix: str) -> tuple[str, dict[str, str], str | None]:
    i = next(_names)
    _, pending = await pending_lead_pair(world, f"温州第{i}机械有限公司", seq=i)
    return f"/leads/{pending.id}{suffix}", {"reason": "测试"}, None


async def _list(path: str, world: World) -> tuple[str, dict[str, str], str | None]:
    if path == "/leads":
        await pending_lead_pair(world, "宁波海曙贸易有限公司", seq=4000)
        return path, {}, "宁波海曙贸易有限公司"
    if path == "/orders":
        return (await _order_probe(world))[0].replace("/orders/", "/orders?x="), {}, None
    return path, {}, None


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/login"): Case(lambda w: _list("/login", w)),
    ("POST", "/login"): Case(lambda w: _list("/login", w)),
    ("POST", "/logout"): Case(lambda w: _list("/logout", w)),
    ("GET", "/"): Case(lambda w: _list("/", w)),
    ("GET", "/orders"): Case(lambda w: _list("/orders", w)),
    ("GET", "/leads"): Case(lambda w: _list("/leads", w)),
    ("GET", r"/orders/{id:\d+}"): Case(lambda w: _order_probe(w)),
    ("POST", r"/orders/{id:\d+}/approve"): Case(lambda w: _order_probe(w, "/approve")),
    ("POST", r"/orders/{id:\d+}/reject"): Case(lambda w: _order_probe(w, "/reject")),
    ("POST", r"/orders/{id:\d+}/ship"): Case(lambda w: _shippable_probe(w)),
    ("GET", "/returns"): Case(lambda w: _list("/returns", w)),
    ("GET", "/alerts"): Case(lambda w: _list("/alerts", w)),
    ("POST", r"/alerts/{id:\d+}/read"): Case(lambda w: _alert_probe(w)),
    ("POST", "/alerts/read-all"): Case(lambda w: _list("/alerts/read-all", w)),
    ("GET", "/statements"): Case(lambda w: _list("/statements", w)),
    ("GET", r"/statements/{id:\d+}"): Case(lambda w: _statement_probe(w, "")),
    ("POST", r"/statements/{id:\d+}/resolve"): Case(lambda w: _statement_probe(w, "/resolve")),
    ("POST", r"/returns/{id:\d+}/approve"): Case(lambda w: _return_probe(w, "/approve")),
    ("POST", r"/returns/{id:\d+}/reject"): Case(lambda w: _return_probe(w, "/reject")),
    ("POST", r"/returns/{id:\d+}/receive"): Case(lambda w: _return_probe(w, "/receive", approved=True)),
    ("POST", r"/leads/{id:\d+}/approve"): Case(lambda w: _lead_probe(w, "/approve")),
    ("POST", r"/leads/{id:\d+}/reject"): Case(lambda w: _lead_probe(w, "/reject")),
}


def _concrete(path: str, obj_id: int) -> str:
    return re.sub(r"{id:[^}]+}", str(obj_id), path)


def test_every_console_page_has_a_case() -> None:
    pages = {(p.method, p.path) for p in collect_pages().pages}
    assert not pages - set(CASES), f"add a case for: {sorted(pages - set(CASES))}"
    assert not set(CASES) - pages, f"stale cases: {sorted(set(CASES) - pages)}"
    assert all(p.scope in ("public", "self", "object") for p in collect_pages().pages)


async def test_another_regions_manager_gets_404_on_every_object_page_and_action(client) -> None:
    world = await make_world()
    north = await token_for(world.north.manager)
    failures = []
    for page in collect_pages().pages:
        if page.scope != "object":
            continue
        path, form, _ = await CASES[(page.method, page.path)].probe(world)
        before = await _state()
        call = get if page.method == "GET" else post
        status, body = await call(client, "/console" + path, north, *([form] if page.method != "GET" else []))
        if status != 404 or "不在您的管辖范围内" not in body:
            failures.append(f"{page.method} {path}: {status}")
        if await _state() != before:
            failures.append(f"{page.method} {path}: refused but changed state")
    assert not failures, failures


async def test_list_pages_show_east_to_east_and_never_to_north(client) -> None:
    world = await make_world()
    order = await make_order(world.east.distributor, product=world.product)
    await pending_lead_pair(world)
    await disputed_statement(world)
    await east_alert(world)
    east, north = await token_for(world.east.manager), await token_for(world.north.manager)
    for path, marker in (
        ("/console/orders", order.number),
        ("/console/leads", "杭州云栖科技有限公司"),
        ("/console/orders?distributor_id=" + str(world.east.distributor.id), order.number),
        ("/console/statements", "3月回款未入账"),
        ("/console/alerts", "库存不足：测试商品"),
    ):
        status, body = await get(client, path, east)
        assert status == 200 and marker in body, path
        status, body = await get(client, path, north)
        assert marker not in body, f"{path} leaked east's object to north"
    # filtering by another region's distributor is a 404, like GET /api/v1/orders?distributor_id=
    status, _ = await get(client, f"/console/orders?distributor_id={world.east.distributor.id}", north)
    assert status == 404
    status, body = await get(client, "/console/", north)
    assert re.search(r'id="todo-orders">0<', body) and re.search(r'id="todo-leads">0<', body)
    status, body = await get(client, "/console/orders", north)
    assert world.east.distributor.name not in body  # not even in the filter drop-down


async def _state() -> list[Any]:
    orders = await Order.all().order_by("id").values_list("id", "status")
    lead_rows = await Lead.all().order_by("id").values_list("id", "status")
    requests = await ReturnRequest.all().order_by("id").values_list("id", "status")
    sts = await Statement.all().order_by("id").values_list("id", "status")
    alerts = await Notification.all().order_by("id").values_list("id", "read_at")
    return [orders, lead_rows, requests, sts, alerts]


# --- assets ---------------------------------------------------------------------------------


def test_vendored_assets_are_pinned_and_present() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    assert package["dependencies"]["htmx.org"] == "2.0.11"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/htmx.org"]["version"] == "2.0.11"
    vendor = ROOT / "console" / "static" / "vendor"
    assert 'version:"2.0.11"' in (vendor / "htmx.min.js").read_text().replace(" ", "")
    echarts = lock["packages"]["node_modules/echarts"]["version"]
    assert package["dependencies"]["echarts"] == echarts
    assert (vendor / "echarts.common.min.js").stat().st_size > 100_000


async def test_static_assets_are_served_with_csp(client) -> None:
    async with client.get("/console/static/vendor/htmx.min.js") as resp:
        assert resp.status == 200 and "javascript" in resp.headers["Content-Type"]
        assert "Content-Security-Policy" in resp.headers
