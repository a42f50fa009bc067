"""Pydantic's own error messages are English; people read these instead.

`zh_message(error)` turns one pydantic error (a dict from `exc.errors()`) into Chinese, keyed
by its `type` and filled from its `ctx`; `zh_fields(exc)` gives the `details.fields` list
(`field`, `message`, `type`) the API answers with. Types not listed get a generic message.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError as PydanticError

ZH: dict[str, str] = {
    "missing": "必填",
    "extra_forbidden": "不允许的字段",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "decimal_max_digits": "数字位数过多（最多 {max_digits} 位）",
    "decimal_max_places": "小数最多 {decimal_places} 位",
    "decimal_whole_digits": "整数部分位数过多",
    "bool_parsing": "应为布尔值",
    "bool_type": "应为布尔值",
    "string_type": "应为字符串",
    "string_too_short": "至少 {min_length} 个字符",
    "string_too_long": "最多 {max_length} 个字符",
    "string_pattern_mismatch": "格式不正确",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "list_type": "应为列表",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "greater_than": "必须大于 {gt}",
    "greater_than_equal": "不能小于 {ge}",
    "less_than": "必须小于 {lt}",
    "less_than_equal": "不能大于 {le}",
    "multiple_of": "应为 {multiple_of} 的倍数",
    "finite_number": "应为有限数字",
    "literal_error": "应为以下之一：{expected}",
    "enum": "应为以下之一：{expected}",
    "date_parsing": "日期格式应为 年-月-日（如 2026-01-31）",
    "date_from_datetime_parsing": "日期格式应为 年-月-日（如 2026-01-31）",
    "date_from_datetime_inexact": "日期格式应为 年-月-日（如 2026-01-31）",
    "date_type": "日期格式应为 年-月-日（如 2026-01-31）",
    "datetime_parsing": "时间格式不正确（如 2026-01-31T08:00:00+08:00）",
    "datetime_from_date_parsing": "时间格式不正确（如 2026-01-31T08:00:00+08:00）",
    "datetime_type": "时间格式不正确（如 2026-01-31T08:00:00+08:00）",
    "timezone_aware": "时间须带时区",
    "uuid_parsing": "格式不正确",
    "json_invalid": "格式不正确",
    "string_unicode": "应为有效的文本",
    "union_tag_invalid": "类型不正确",
    "union_tag_not_found": "缺少类型字段",
}
FALLBACK = "格式不正确"
_VALUE_ERROR = "Value error, "
_LIST_SEP = re.compile(r",? or |, ")  # pydantic's "'a', 'b' or 'c'"
_CJK = re.compile(r"[\u4e00-\u9fff]")


def zh_message(error: Any) -> str:
    """A Chinese message for one pydantic error (without the "field: " prefix)."""
    kind = error["type"]
    if kind in ("value_error", "assertion_error"):
        # validators raise Chinese text (handlers.admin_common.invalid); a plain ValueError
        # arrives with pydantic's English prefix, which users must not read
        msg = str(error["msg"]).removeprefix(_VALUE_ERROR).removeprefix("Assertion failed, ")
        return msg or FALLBACK
    template = ZH.get(kind)
    if template is None:  # our own PydanticCustomError types already speak Chinese
        msg = str(error.get("msg") or "")
        return msg if _CJK.search(msg) else FALLBACK
    ctx = {k: _LIST_SEP.sub("、", str(v)) for k, v in (error.get("ctx") or {}).items()}
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return FALLBACK


def zh_fields(exc: PydanticError, where: str = "body") -> list[dict[str, Any]]:
    """One `{field, message, type}` per error; `field` is the dotted path (`lines.0.qty`)."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or where, "message": zh_message(e), "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
