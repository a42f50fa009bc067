"""Domain errors -> chat text, in one place (the HTTP API maps the same errors to JSON)."""

from __future__ import annotations

from core.errors import DomainError

TEXTS: dict[str, str] = {
    "validation_error": "输入有误：{message}",
    "not_found": "没有找到，或您无权查看。",
    "forbidden": "您的账号没有这个权限。",
    "unauthenticated": "账号不可用（已停用或未绑定），请联系管理员。",
    "invalid_state": "当前状态不允许这个操作：{message}",
    "insufficient_stock": "库存不足：{message}",
    "credit_limit_exceeded": "超出信用额度，订单未提交。请先回款或联系业务经理调整额度。",
    "lead_conflict": "该客户已被报备，且在保护期内。如需申请仲裁，请回复“仲裁”。",
    "request_in_progress": "上一个请求还在处理中，请稍后再试。",
    "idempotency_key_reused": "这笔订单已按之前的内容提交过，如需新订单请重新发送“下单”。",
    "rate_limited": "操作太频繁了，请稍后再试。",
    "payload_too_large": "内容太长了，请分开发送。",
    "unavailable": "{message}",
}
FALLBACK = "抱歉，系统繁忙，请稍后再试。"

# Validation messages from use-cases are English "field: reason"; these read better in chat.
FIELD_NAMES = {
    "customer_name": "客户名称",
    "phone": "电话",
    "uscc": "统一社会信用代码",
    "invite_code": "邀请码",
    "amount": "金额",
    "project": "项目",
    "region": "区域",
    "qty": "数量",
    "lines": "商品",
}


def user_text(exc: DomainError) -> str:
    template = TEXTS.get(exc.code)
    if template is None:
        return f"操作失败：{exc.message}"
    message = exc.message
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    if isinstance(field, str) and field in FIELD_NAMES:
        message = f"{FIELD_NAMES[field]}不正确（{message.split(': ', 1)[-1]}）"
    return template.format(message=message)
