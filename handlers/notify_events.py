"""Domain events -> notifications (imported lazily by handlers.events on the first emit).

The subscribers here are deferred: the emitter's transaction records the event (one
`notification_event` row, committed or rolled back with the change) and the outbox drain
runs them in its next pass (`handlers.fanout`), so recipients are resolved and the
per-recipient rows written off the business transaction. Dedupe keys
(`order:<id>:<status>:<user>`, ...) make a re-emitted or re-run event harmless. A subscriber
reading a row sees it as it is at fan-out time (an event carrying its facts, like
order.placed's ``order``, uses those).

- order.placed (awaiting review) -> the region's managers; order.approved / rejected (with
  the reason) / shipped (one notice per batch: batch, goods, carrier, tracking number) /
  received / completed / cancelled -> the distributor's users and the sales rep who placed
  the order (not the actor).
- return.requested (申请退货) -> the region's managers; return.approved / rejected (with the
  reason) / received -> the distributor's users (not the actor).
- lead.registered awaiting arbitration -> the region's managers; lead.approved / rejected /
  expired -> the lead's owner (not the actor); a lead rejected because an arbitration gave
  its customer to another (`superseded_by`) -> also its region's managers; lead.escalated (an
  arbitration crossing regions) -> the other regions' managers and the admins.
- statement.ready -> the beneficiary (or the distributor's users); statement.disputed -> the
  managers of the region, naming who disputed. Titles: 返利对账单 / 佣金对账单 / 应收对账单.
"""

from __future__ import annotations

from decimal import Decimal

from core.clock import now
from core.money import money
from handlers.events import Event, subscribe
from handlers.notify import RecipientBook, build_row, distributor_users, insert_rows, managers_of_region
from handlers.sql import params
from handlers.words import statement_title
from models.base import LeadStatus, OrderStatus, UserRole, UserStatus
from models.commission import Statement
from models.distributor import Distributor
from models.lead import Lead
from models.order import Order
from models.user import SalesAssignment, User

ORDER_WORDS = {
    "order.placed": "待审核",
    "order.approved": "已审核",
    "order.rejected": "已驳回",
    "order.shipped": "已发货",
    "order.received": "已收货",
    "order.completed": "已完成",
    "order.cancelled": "已取消",
}


async def _send(
    user_ids: list[int], actor_id: int, *, kind: str, title: str, body: str, key: str, payload: dict
) -> None:
    """One outbox row per recipient (not the actor), written insert-or-ignore in one statement."""
    targets = [u for u in sorted(set(user_ids)) if u != actor_id]
    if not targets:
        return
    book = await RecipientBook.load(targets)
    at = now()
    rows = [
        build_row(
            recipient_id=uid,
            recipient_ref=None,
            kind=kind,
            title=title,
            body=body,
            payload=payload,
            dedupe_key=f"{key}:{uid}",
            urgent=False,
            channel=book.choose(uid, kind),
            at=at,
        )
        for uid in targets
    ]
    await insert_rows(rows)


# Raw: runs inside every order admission and transition (handlers.sql).
_ORDER_SQL = (
    "SELECT o.id AS id, o.number AS number, o.status AS status, o.total_amount AS total_amount,"
    " o.reject_reason AS reject_reason, o.cancel_reason AS cancel_reason,"
    " o.placed_by_id AS placed_by_id, d.id AS distributor_id, d.name AS distributor_name,"
    " d.region AS region FROM sales_order o JOIN distributor d ON d.id = o.distributor_id WHERE o.id = {id}"
)
# One shipment batch: its number within the order, carrier, tracking number and lines.
_SHIPMENT_SQL = (
    "SELECT s.carrier AS carrier, s.tracking_no AS tracking_no,"
    " (SELECT COUNT(*) FROM shipment e WHERE e.order_id = s.order_id AND e.id <= s.id) AS batch,"
    " (SELECT COUNT(*) FROM shipment e WHERE e.order_id = s.order_id AND e.id > s.id) AS later,"
    " l.name AS name, p.unit AS unit, sl.qty AS qty"
    " FROM shipment s JOIN shipment_line sl ON sl.shipment_id = s.id"
    " JOIN order_line l ON l.id = sl.order_line_id JOIN product p ON p.id = l.product_id"
    " WHERE s.id = {id} ORDER BY sl.id"
)


async def _rep_placer(order: dict) -> list[int]:  # type: ignore[type-arg]
    """The sales rep who placed the order (by chat or the app) hears of its review and shipment."""
    uid = order.get("placed_by_id")
    if not uid:
        return []
    rep = await User.get_or_none(id=int(uid), role=UserRole.SALES, status=UserStatus.ACTIVE)
    return [rep.id] if rep else []


async def _shipment_words(order: dict, shipment_id: int) -> tuple[str, str] | None:  # type: ignore[type-arg]
    """(title, body) of one shipment batch: batch number, what is in it, carrier, tracking no."""
    p = params(Order)
    rows = await p.fetch(_SHIPMENT_SQL.format(id=p(int(shipment_id))))
    if not rows:
        return None
    first = rows[0]
    batch = int(first["batch"])
    # Fanned out later by the drain: the order may have shipped more since, so "all shipped"
    # only for the batch that is the order's last.
    done = int(first["later"]) == 0 and str(order["status"]) in (
        OrderStatus.SHIPPED,
        OrderStatus.RECEIVED,
        OrderStatus.COMPLETED,
    )
    number = order["number"]
    # Titles fit a subscribe message's thing (20 characters) with the whole order number.
    title = f"{number} 已全部发货" if done else f"{number} 第{batch}批发货"
    goods = "、".join(f"{r['name']} {r['qty']}{r['unit'] or ''}" for r in rows)
    carrier = first["carrier"] or "未填写"
    tracking = first["tracking_no"] or "未填写"
    state = ("全部发齐" if batch == 1 else "末批，全部发齐") if done else "部分发货，其余待发"
    body = (
        f"{order['distributor_name']} 订单 {number} 第{batch}批（{state}）：{goods}；"
        f"承运：{carrier}，运单号：{tracking}"
    )
    return title, body


@subscribe(*ORDER_WORDS, deferred=True)
async def on_order_event(event: Event) -> None:
    order = event.payload.get("order")
    if order is None:
        p = params(Order)
        rows = await p.fetch(_ORDER_SQL.format(id=p(int(event.payload["order_id"]))))
        if not rows:
            return
        order = rows[0]
    actor_id = int(event.payload.get("actor_id") or 0)
    word = ORDER_WORDS[event.name]
    status = event.name.split(".", 1)[1]
    number = order["number"]
    title = f"订单{number} {word}"  # 20 characters: fits a subscribe message's thing
    body = f"{order['distributor_name']} 订单 {number}，金额 ¥{money(order['total_amount'])}，状态：{word}"
    if event.name == "order.rejected" and order.get("reject_reason"):
        body += f"，原因：{order['reject_reason']}"
    elif event.name == "order.cancelled" and order.get("cancel_reason"):
        body += f"，原因：{order['cancel_reason']}"
    payload = {"order_id": order["id"], "number": number, "page": f"pages/orders/detail?id={order['id']}"}
    key = f"order:{order['id']}:{status}"
    if event.name == "order.shipped":
        shipment_id = event.payload.get("shipment_id", "")
        key += f":{shipment_id}"
        words = await _shipment_words(order, int(shipment_id)) if shipment_id else None
        if words:
            title, body = words
    if event.name == "order.placed":
        if order["status"] != OrderStatus.PENDING_REVIEW:
            return  # auto-approved: order.approved follows
        recipients = await managers_of_region(order["region"])
    else:
        recipients = await distributor_users(order["distributor_id"]) + await _rep_placer(order)
    await _send(recipients, actor_id, kind="order_status", title=title, body=body, key=key, payload=payload)


@subscribe(
    "lead.registered", "lead.approved", "lead.rejected", "lead.expired", "lead.escalated", deferred=True
)
async def on_lead_event(event: Event) -> None:
    lead = await Lead.get_or_none(id=int(event.payload["lead_id"])).select_related("distributor")
    if lead is None:
        return
    actor_id = int(event.payload.get("actor_id") or 0)
    payload = {"lead_id": lead.id, "page": f"pages/leads/detail?id={lead.id}"}
    if event.name == "lead.registered":
        if lead.status != LeadStatus.PENDING_REVIEW:
            return
        region = lead.region or (lead.distributor.region if lead.distributor else None)
        await _send(
            await managers_of_region(region),
            actor_id,
            kind="lead",
            title=f"报备待审核：{lead.customer_name}",
            body=f"客户 {lead.customer_name} 的报备与已有报备冲突，请审核",
            key=f"lead:{lead.id}:review",
            payload=payload,
        )
        return
    if event.name == "lead.escalated":
        await _lead_escalated(lead, [str(r) for r in event.payload["regions"]], actor_id, payload)
        return
    if event.payload.get("superseded_by"):
        await _send(
            await managers_of_region(lead.region),
            actor_id,
            kind="lead",
            title=f"报备经仲裁改判：{lead.customer_name}",
            body=f"{lead.region or ''}区域客户 {lead.customer_name} 的报备{lead.reject_reason or ''}",
            key=f"lead:{lead.id}:superseded",
            payload=payload,
        )
    status = event.name.split(".", 1)[1]
    words = {"approved": "已通过", "rejected": "未通过", "expired": "保护期已到期"}
    reason = f"（{lead.reject_reason}）" if status == "rejected" and lead.reject_reason else ""
    await _send(
        [lead.owner_id],  # type: ignore[attr-defined]
        actor_id,
        kind="lead",
        title=f"报备{words[status]}：{lead.customer_name}",
        body=f"客户 {lead.customer_name} 的报备{words[status]}{reason}",
        key=f"lead:{lead.id}:{status}",
        payload=payload,
    )


async def _lead_escalated(lead: Lead, regions: list[str], actor_id: int, payload: dict) -> None:  # type: ignore[type-arg]
    """The managers of the other regions involved, and the admins (who alone see every region)."""
    recipients: set[int] = set()
    for region in regions:
        recipients.update(await managers_of_region(region))
    recipients.update(
        await User.filter(role=UserRole.ADMIN, status=UserStatus.ACTIVE).values_list("id", flat=True)
    )
    await _send(
        sorted(recipients),
        actor_id,
        kind="lead",
        title=f"跨区域报备仲裁：{lead.customer_name}",
        body=(
            f"{lead.region or ''}区域的客户 {lead.customer_name} 报备待仲裁，与{'、'.join(regions)}区域"
            "受保护的报备冲突；跨区域仲裁须由管理员或同时负责这些区域的经理审批"
        ),
        key=f"lead:{lead.id}:cross_region",
        payload=payload,
    )


async def _statement_region_managers(st: Statement) -> list[int]:
    if st.distributor_id:  # type: ignore[attr-defined]
        dist = await Distributor.get(id=st.distributor_id)  # type: ignore[attr-defined]
        return await managers_of_region(dist.region)
    uid = st.beneficiary_id  # type: ignore[attr-defined]
    dids = set(await SalesAssignment.filter(user_id=uid).values_list("distributor_id", flat=True))
    dids |= set(await Distributor.filter(sales_rep_id=uid).values_list("id", flat=True))
    regions = (
        set(await Distributor.filter(id__in=list(dids)).values_list("region", flat=True)) if dids else set()
    )
    out: set[int] = set()
    for region in regions:
        out.update(await managers_of_region(region))
    return sorted(out)


async def _who(user_id: int) -> str:
    """Who acted ("华东建材有限公司 李会计 "), with the distributor they speak for."""
    user = await User.get_or_none(id=user_id).select_related("distributor") if user_id else None
    if user is None:
        return ""
    org = f"{user.distributor.name} " if user.distributor else ""
    return f"{org}{user.display_name} "


@subscribe("statement.ready", "statement.disputed", deferred=True)
async def on_statement_event(event: Event) -> None:
    st = await Statement.get_or_none(id=int(event.payload["statement_id"]))
    if st is None:
        return
    actor_id = int(event.payload.get("actor_id") or 0)
    what = statement_title(str(st.kind), rep=bool(st.beneficiary_id))  # type: ignore[attr-defined]
    payload = {"statement_id": st.id, "period": st.period, "page": f"pages/statements/detail?id={st.id}"}
    if event.name == "statement.ready":
        if st.beneficiary_id:  # type: ignore[attr-defined]
            recipients = [st.beneficiary_id]  # type: ignore[attr-defined]
        else:
            recipients = await distributor_users(st.distributor_id)  # type: ignore[attr-defined]
        await _send(
            recipients,
            actor_id,
            kind="statement",
            title=f"{st.period} {what}已出",
            body=f"{st.period} {what}合计 ¥{money(st.total)}，请确认或提出异议",
            key=f"statement:{st.id}:ready:{money(st.total)}",
            payload=payload,
        )
        return
    who = await _who(actor_id)
    await _send(
        await _statement_region_managers(st),
        actor_id,
        kind="statement",
        title=f"{st.period} {what}有异议",
        body=f"{who}对 {st.period} {what}（¥{money(st.total)}）提出异议：{st.dispute_reason or ''}",
        key=f"statement:{st.id}:disputed:{st.updated_at.isoformat()}",
        payload=payload,
    )


RETURN_WORDS = {
    "return.requested": "申请退货",
    "return.approved": "退货申请已通过",
    "return.rejected": "退货申请未通过",
    "return.received": "退货已入库",
}
_RETURN_SQL = (
    "SELECT r.id AS id, r.order_id AS order_id, r.reason AS reason, r.review_note AS review_note,"
    " r.amount AS amount, o.number AS number, d.id AS distributor_id, d.name AS distributor_name,"
    " d.region AS region FROM return_request r JOIN sales_order o ON o.id = r.order_id"
    " JOIN distributor d ON d.id = r.distributor_id WHERE r.id = {id}"
)


@subscribe(*RETURN_WORDS, deferred=True)
async def on_return_event(event: Event) -> None:
    p = params(Order)
    rows = await p.fetch(_RETURN_SQL.format(id=p(int(event.payload["return_request_id"]))))
    if not rows:
        return
    req = rows[0]
    status = event.name.split(".", 1)[1]
    number = req["number"]
    if status == "requested":
        body = f"{req['distributor_name']} 订单 {number} 申请退货，原因：{req['reason']}，请审核"
        recipients = await managers_of_region(req["region"])
    else:
        if status == "received":
            amount = money(Decimal(str(req["amount"] or 0)))
            body = f"订单 {number} 的退货已入库，已冲减应收 ¥{amount}"
        else:
            note = f"，说明：{req['review_note']}" if req["review_note"] else ""
            verdict = "已通过" if status == "approved" else "未通过"
            body = f"订单 {number} 的退货申请{verdict}{note}"
        recipients = await distributor_users(req["distributor_id"])
    await _send(
        recipients,
        int(event.payload.get("actor_id") or 0),
        kind="order_status",
        title=f"订单 {number} {RETURN_WORDS[event.name]}",
        body=body,
        key=f"return:{req['id']}:{status}",
        payload={
            "return_request_id": req["id"],
            "order_id": req["order_id"],
            "number": number,
            "page": f"pages/returns/detail?id={req['id']}",
        },
    )
