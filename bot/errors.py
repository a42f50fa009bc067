"""Domain errors -> chat text, in one place (the HTTP API maps the same errors to JSON)."""

from __future__ import annotations

from core.errors import DomainError

TEXTS: dict[str, str] = {
    "validation_error": "输入有误：{message}",
    "not_found": "没有找到，或您无权查看。",
    "forbidden": "您的账号没有这个权限。",
    "unauthenticated": "账号不可用（已停用或未绑定），请联系管理员。",
    "invalid_state": "{message}",  # use-cases say why in Chinese (order status, duplicate, ...)
    "insufficient_stock": "{message}",
    "credit_limit_exceeded": "超出信用额度，订单未提交。请先回款或联系业务经理调整额度。",
    "lead_conflict": "该客户已被报备，且在保护期内。如需申请仲裁，请回复“仲裁”。",
    "request_in_progress": "上一个请求还在处理中，请稍后再试。",
    "idempotency_key_reused": "这笔订单已按之前的内容提交过，如需新订单请重新发送“下单”。",
    "rate_limited": "操作太频繁了，请稍后再试。",
    "payload_too_large": "内容太长了，请分开发送。",
    "unavailable": "{message}",
}
FALLBACK = "抱歉，系统繁忙，请稍后再试。"

# Use-case messages lead with the machine field name ("lines.0.qty: 必填"); chat says it in
# Chinese ("第 1 项商品的数量：必填"). A path with an unknown name is left as it is.
FIELD_NAMES = {
    "customer_name": "客户名称",
    "phone": "电话",
    "uscc": "统一社会信用代码",
    "invite_code": "邀请码",
    "amount": "金额",
    "project": "项目",
    "region": "区域",
    "lines": "商品",
    "sku": "商品编码",
    "qty": "数量",
    "distributor_id": "经销商",
    "ship_to": "收货信息",
    "contact": "联系人",
    "address": "地址",
    "note": "备注",
    "reason": "原因",
    "period": "月份",
}


def field_label(path: str) -> str | None:
    """ "lines.0.qty" -> "第 1 项商品的数量"; None if a part has no Chinese name."""
    words: list[str] = []
    for part in path.split("."):
        if part.isdigit() and words:
            words[-1] = f"第 {int(part) + 1} 项{words[-1]}"
        elif part in FIELD_NAMES:
            words.append(FIELD_NAMES[part])
        else:
            return None
    return "的".join(words) or None


def _readable(exc: DomainError) -> str:
    """The message with its field said in Chinese; validation errors carry the field either
    as details.field (use-cases) or as details.fields[0] (request validation)."""
    details = exc.details if isinstance(exc.details, dict) else {}
    field, reason = details.get("field"), exc.message
    fields = details.get("fields")
    if isinstance(fields, list) and fields and isinstance(fields[0], dict):
        field = fields[0].get("field")
        reason = str(fields[0].get("message") or reason)
    if not isinstance(field, str):
        return exc.message
    reason = reason.removeprefix(f"{field}: ")
    label = field_label(field)
    return f"{label}：{reason}" if label else exc.message


def user_text(exc: DomainError) -> str:
    template = TEXTS.get(exc.code)
    if template is None:
        return f"操作失败：{exc.message}"
    return template.format(message=_readable(exc))
