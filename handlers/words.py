"""The words people read for our field names and enum values (exports, reports, chat).

`header(col, sheet)` is a column's Chinese heading, `value(col, v, sheet)` an enum value's
Chinese word (unknown values pass through unchanged), `MONEY` the columns that hold money
(written as numbers with `#,##0.00`), `TIMES` those that hold instants (shown in 北京时间).
A `sheet` ("distributors", "sales-report", ...) refines a word where one name means different
things (a product's `status` is 在售/停售, a user's 正常/停用).
"""

from __future__ import annotations

from typing import Any

MONEY_FORMAT = "#,##0.00"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
TZ_NOTE = "（北京时间）"

HEADERS: dict[str, str] = {
    "id": "ID",
    "name": "名称",
    "number": "编号",
    "uscc": "统一社会信用代码",
    "level": "级别",
    "region": "区域",
    "regions": "负责区域",
    "parent_id": "上级经销商ID",
    "parent_name": "上级经销商",
    "sales_rep_id": "业务员ID",
    "sales_rep_name": "业务员",
    "credit_limit": "信用额度",
    "payment_terms": "付款方式",
    "status": "状态",
    "contact": "联系人",
    "phone": "电话",
    "address": "地址",
    "created_at": "创建时间",
    "updated_at": "更新时间",
    "expires_at": "过期时间",
    "username": "用户名",
    "display_name": "姓名",
    "role": "角色",
    "distributor_id": "经销商ID",
    "distributor_name": "经销商",
    "distributor": "经销商",
    "distributor_ids": "负责经销商ID",
    "distributor_names": "负责经销商",
    "code": "编码",
    "active": "启用",
    "start_date": "开始日期",
    "end_date": "结束日期",
    "target_amount": "目标金额",
    "price_policy": "价格政策",
    "sku": "SKU",
    "pinyin": "拼音",
    "initials": "拼音首字母",
    "category": "品类",
    "unit": "单位",
    "spec": "规格",
    "product_id": "商品ID",
    "product_name": "商品",
    "price": "价格",
    "items": "明细",
    "valid_from": "生效日期",
    "valid_to": "截止日期",
    "priority": "优先级",
    "kind": "类型",
    "discount_rate": "折扣率",
    "buy_n": "买N",
    "get_m": "送M",
    "user_id": "用户ID",
    "user_name": "用户",
    "warehouse_id": "仓库ID",
    "warehouse_name": "仓库",
    "warehouse_code": "仓库编码",
    "warehouse": "仓库",
    # reports
    "orders": "订单数",
    "qty": "数量",
    "gross": "销售额",
    "returns": "退货额",
    "net": "净销售额",
    "on_hand": "库存数量",
    "reserved": "已预留",
    "available": "可用数量",
    "shipped_28d": "近28天发货",
    "turnover_days": "周转天数",
    "slow_mover": "慢销",
    "balance": "余额",
    "current": "未到期",
    "d1_30": "1-30天",
    "d31_60": "31-60天",
    "d61_90": "61-90天",
    "d90_plus": "90天以上",
    "overdue": "逾期合计",
    "oldest_due": "最早到期日",
    "period": "期间",
    "beneficiary_type": "对象类型",
    "beneficiary_id": "对象ID",
    "beneficiary": "对象",
    "accrual": "计提",
    "reversal": "冲回",
    "adjustment": "调整",
    "total": "合计金额",
    "entries": "条目数",
    "statement_status": "对账单状态",
    "amount": "金额",
    "total_amount": "订单金额",
}

# The sales report's key/label columns name what it is grouped by.
SALES_KEYS = {
    "distributor": ("经销商ID", "经销商"),
    "product": ("SKU", "商品"),
    "category": ("品类", "品类名称"),
    "region": ("区域", "区域名称"),
    "month": ("月份", "月份名称"),
}

_STATUS = {
    "active": "正常",
    "suspended": "停用",
    "applying": "申请中",
    "inactive": "停售",
    "pending_review": "待审核",
    "approved": "已审核",
    "shipped": "已发货",
    "received": "已收货",
    "completed": "已完成",
    "rejected": "已驳回",
    "cancelled": "已取消",
    "draft": "草稿",
    "expired": "已到期",
    "terminated": "已终止",
    "open": "待确认",
    "confirmed": "已确认",
    "disputed": "有异议",
    "protected": "保护中",
    "won": "已成交",
    "requested": "已申请",
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "failed": "失败",
    "dead": "已放弃",
    "unknown": "未知",
}

VALUES: dict[str, dict[Any, str]] = {
    "status": _STATUS,
    "statement_status": _STATUS,
    "payment_terms": {"prepay": "款到发货", "monthly": "月结", "quarterly": "季结"},
    "level": {1: "一级", 2: "二级"},
    "role": {"admin": "管理员", "manager": "区域经理", "sales": "业务员", "distributor": "经销商"},
    "beneficiary_type": {"user": "业务员", "sales": "业务员", "distributor": "经销商"},
    "kind": {
        "discount": "折扣",
        "buy_n_get_m": "买赠",
        "accrual": "计提",
        "reversal": "冲回",
        "adjustment": "调整",
        "commission": "佣金",
        "receivables": "应收",
        "shipment": "发货",
        "payment": "回款",
        "return": "退货",
    },
    "reason": {
        "inbound": "入库",
        "outbound": "出库",
        "stocktake": "盘点",
        "reserve": "预留",
        "release": "释放",
        "ship": "发货",
        "return": "退货",
        "adjust": "调整",
    },
    "mode": {"flat": "固定比例", "tiered_marginal": "超额累进", "tiered_whole": "全额累进"},
}
# Where one name means something else on one sheet.
SHEET_VALUES: dict[tuple[str, str], dict[Any, str]] = {
    ("products", "status"): {"active": "在售", "inactive": "停售"},
    ("contracts", "status"): {
        "active": "生效中",
        "draft": "草稿",
        "expired": "已到期",
        "terminated": "已终止",
    },
}

SHEET_TITLES = {
    "sales-report": "销售报表",
    "inventory-report": "库存报表",
    "receivables-report": "应收账龄",
    "commissions-report": "佣金返利",
    "distributors": "经销商",
    "users": "用户",
    "warehouses": "仓库",
    "contracts": "合同",
    "products": "商品",
    "price-lists": "价格表",
    "promotions": "促销活动",
}

MONEY = frozenset(
    {
        "credit_limit",
        "target_amount",
        "price",
        "amount",
        "total_amount",
        "gross",
        "returns",
        "net",
        "balance",
        "current",
        "d1_30",
        "d31_60",
        "d61_90",
        "d90_plus",
        "overdue",
        "accrual",
        "reversal",
        "adjustment",
        "total",
    }
)
TIMES = frozenset({"created_at", "updated_at", "expires_at", "shipped_at", "paid_at", "sent_at", "read_at"})


def header(col: str, sheet: str = "", params: dict[str, Any] | None = None) -> str:
    """A column's Chinese heading (times say they are 北京时间); an unknown column keeps its name."""
    if sheet == "sales-report" and col in ("key", "label"):
        key, label = SALES_KEYS.get(str((params or {}).get("group_by", "distributor")), ("键", "名称"))
        return key if col == "key" else label
    if sheet == "products" and col == "name":
        return "商品名称"
    word = HEADERS.get(col, col)
    return word + TZ_NOTE if col in TIMES else word


def value(col: str, v: Any, sheet: str = "") -> Any:
    """An enum value's Chinese word (booleans are 是/否); anything else unchanged."""
    if isinstance(v, bool):
        return "是" if v else "否"
    words = SHEET_VALUES.get((sheet, col)) or VALUES.get(col)
    if words is None or v is None:
        return v
    try:
        return words.get(v, v)
    except TypeError:  # unhashable (a list): not an enum value
        return v


def statement_title(kind: str, rep: bool) -> str:
    """返利对账单 (a distributor's commission), 佣金对账单 (a rep's), 应收对账单 (receivables)."""
    if kind == "receivables":
        return "应收对账单"
    return "佣金对账单" if rep else "返利对账单"
