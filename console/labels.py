"""Chinese labels for statuses and audit actions shown in the console."""

from __future__ import annotations

ORDER_STATUS = {
    "pending_review": "待审核",
    "approved": "已审核",
    "shipped": "已发货",
    "received": "已签收",
    "completed": "已完成",
    "rejected": "已驳回",
    "cancelled": "已取消",
}
LEAD_STATUS = {
    "protected": "保护中",
    "pending_review": "待仲裁",
    "rejected": "已驳回",
    "expired": "已过期",
    "won": "已成交",
}
RETURN_STATUS = {"requested": "待审核", "approved": "已同意", "rejected": "已驳回", "received": "已收货"}
STATEMENT_STATUS = {"open": "待确认", "confirmed": "已确认", "disputed": "有异议"}
STATEMENT_KIND = {"commission": "佣金对账单", "receivables": "应收对账单"}
ENTRY_KIND = {
    "accrual": "计提",
    "reversal": "冲回",
    "adjustment": "调整",
    "shipment": "发货",
    "payment": "回款",
    "return": "退货",
}
SUMMARY_FIELD = {
    "opening": "期初余额",
    "shipped": "本期发货",
    "payments": "本期回款",
    "returns": "本期退货",
    "adjustments": "本期调整",
    "closing": "期末余额",
    "as_of": "截至",
    "overdue": "逾期金额",
}
AUDIT_ACTION = {
    "order.placed": "下单",
    "order.approved": "审核通过",
    "order.rejected": "驳回",
    "order.cancelled": "取消",
    "order.shipped": "发货",
    "order.received": "签收",
    "order.completed": "完成",
    "order.returned": "退货入账",
    "shipment.received": "分批签收",
    "statement.confirm": "确认",
    "statement.dispute": "提出异议",
    "statement.resolve": "处理异议",
}

AUDIT_FIELD = {
    "number": "单号",
    "total": "金额",
    "status": "状态",
    "reason": "原因",
    "note": "备注",
    "carrier": "承运商",
    "tracking_no": "运单号",
    "shipment_id": "发货批次",
    "auto": "自动",
    "amount": "金额",
    "dispute_reason": "异议原因",
}
AUDIT_TIME_FIELD = {"approved_at": "审核时间", "shipped_at": "发货时间", "received_at": "签收时间",
                    "completed_at": "完成时间", "cancelled_at": "取消时间"}


def label(table: dict[str, str], value: object) -> str:
    return table.get(str(value), str(value))
