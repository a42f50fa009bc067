"""What a chat message means, read before any data is: the text normalised, then the intent
with its slots (quantities and items: `bot.quantities`).

`understand(text)` is pure (no database, no catalogue), so the phrasings corpus
(tests/data/chat_corpus.tsv) runs through it in milliseconds. It returns the intent, the
slots it read and, where a command rule of the router takes it, the canonical command text
("有没有盘螺8的" -> "查库存 盘螺8", "上个月提成多少" -> "佣金 上月"): the router matches its
commands on that, so every feature keeps one handler however the user put it. Three intents
have no command and are finished by the bot: "items" (a list of products and quantities,
used while an order is being written), "quantity" (a quantity alone: the answer to "how
many?") and "product" (a bare product name: a stock lookup if the catalogue knows it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from bot.quantities import parse_items, parse_qty

# --- normalising ------------------------------------------------------------------------------

_POLITE_HEAD = re.compile(
    r"^(?:(?:你好|您好|hi|hello|嗨|哈喽|在吗|早上好|上午好|下午好|晚上好)[呀啊哈]?[,，!！。~～\s]+"
    r"|@?(?:渠道)?(?:小助手|助手|机器人)[,，:：\s]*"
    r"|请问一下|请问|麻烦你?|劳驾|帮我|帮忙|帮(?=[查看找问])|请)+",
    re.I,
)
_TAIL = re.compile(r"[\s。.!！~～?？,，]+$")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Width-folded, one space between words, a leading '/', polite openings ("你好，",
    "请问", "麻烦帮我") and trailing punctuation dropped: what the rules below read."""
    text = unicodedata.normalize("NFKC", text).strip().lstrip("/").strip()
    text = _SPACES.sub(" ", text)
    stripped = _POLITE_HEAD.sub("", text)
    if stripped.strip(" ,，。!！?？"):
        text = stripped
    return _TAIL.sub("", text).strip()


# --- intents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Understanding:
    intent: str
    slots: dict[str, str] = field(default_factory=dict)
    command: str | None = None  # what the router's command rules take; None: the bot decides


_ORDER_NO = re.compile(r"SO\d{12}", re.I)
_MONTH = re.compile(r"(\d{4})\s*[-年/.]\s*(\d{1,2})\s*月?")

GREETING = re.compile(
    r"(?:你好|您好|hi|hello|hey|嗨|哈喽|哈啰|在吗|在不在|在么|有人吗|早|早安|早上好|上午好|中午好|下午好|晚上好)"
    r"[呀啊哈吖]*(?:\s*(?:小助手|助手))?",
    re.I,
)
THANKS = re.compile(
    r"(?:好的)?[,，\s]*(?:谢谢|多谢|感谢|谢了|谢啦|thanks?|thank you|thx|辛苦了?)"
    r"(?:你|您|啦|了|哈|哦|呀)*(?:[,，\s]*(?:辛苦了?|麻烦了))?"
    r"|好的|好滴|好嘞|收到|知道了|明白了?|了解|行|ok|okay|嗯+|哦+|👌|👍",
    re.I,
)
HELP = re.compile(
    r"帮助|help|菜单|[?？]+|怎么用|怎么使用|使用说明|用法|说明|功能|你能做什么|你会什么|你能干什么|能干啥|"
    r"可以做什么|都能干嘛|有什么功能|能做啥|怎么操作|指令|命令",
    re.I,
)
CANCEL = re.compile(r"取消|算了|不要了|不用了|退出|不下了|先不下了|撤销|重来")
CONFIRM = re.compile(r"确认|确定|确认下单|确认提交|提交|提交吧|确认吧|没问题|就这些|就这样")

_APPROVE = re.compile(r"审核通过|审批通过|通过|批准|同意|准了|approve", re.I)
_REJECT = re.compile(r"驳回|拒绝|退回|不通过|不批|不同意|reject", re.I)
_APPROVE_PICK = re.compile(rf"(?:{_APPROVE.pattern})\s*(?:第)?(?P<index>\d{{1,2}})?(?:个|单)?", re.I)
_REJECT_PICK = re.compile(
    rf"(?:{_REJECT.pattern})\s*(?:第)?(?P<index>\d{{1,2}})?(?:个|单)?[\s,，:：]*(?P<reason>\D.*)?", re.I
)
_REVIEW = re.compile(
    r"(?:查看|看看|看一下|有哪些|有没有|有啥)?(?:待审核|待审批|待审|要审核|需要审核|要审批|审核|审批)"
    r"(?:的)?(?:订单|单子|列表)?(?:有哪些|有吗|有没有)?"
)
_STOCK_COMMAND = re.compile(
    r"^(?:查库存|库存查询|查询库存|库存|查货|查一下|查一查|查下|查查|查询|查)\s*(?P<q>.*)$"
)
_STOCK_ASK = (
    r"(?:现在|目前|仓库里?)?"
    r"(?:还有货吗|有货吗|有没有货|有现货吗|现货有吗|还有没有货?|还有吗|有库存吗|库存还有多少|还剩多少|还有多少|"
    r"库存多少|有多少货?|多少货|库存够吗|库存够不够|够不够|货够吗|的库存|库存|有吗|在库多少|能发吗)"
)
_STOCK_TAIL = re.compile(rf"^(?P<q>.+?){_STOCK_ASK}(?:啊|呀|呢|吗)?$")
_STOCK_HAS = re.compile(
    r"^(?:现在|目前|仓库里?)?(?:还有没有|有没有|还有|有)(?P<q>.+?)(?:的货|的|货)?(?:吗|呢|啊)?$"
)
_ORDER = re.compile(
    r"^(?:我要下单|我想下单|要下单|下个单|下单|订货|我要订货|我想订货|我要订|我想订|要货|我要货|订购|补货|"
    r"开单|我要买|我想买|要买|买)\s*(?P<rest>.*)$"
)
_ORDER_FOR = re.compile(r"^(?:给|为|替|帮)(?P<dist>.+?)(?:下单|下个单|订货|开单|补货)\s*(?P<rest>.*)$")
_ORDERS = re.compile(
    r"(?:我的|最近的?|最新的?|查看|看看|看一下|查一下|查询|查)?订单(?:列表|状态|情况|记录|进度)?(?:呢|怎么样了|到哪了)?"
    r"|(?:我的|最近的?)?(?:单子|订货记录)(?:呢|怎么样了)?|(?:货|订单)?发货了吗|货到哪了|到哪了"
)
_COMMISSION = re.compile(r".*(?:佣金|提成).*")
_REBATE = re.compile(r".*(?:返利|返点|返佣|回扣|奖励金).*")
_STATEMENT = re.compile(r".*(?:对账单|对账|结算单|账单).*")
_RECEIVABLES = re.compile(
    r".*(?:应收|欠款|欠多少|欠了多少|还欠|欠我们|欠账|账款|回款|逾期|账龄|未付款|未回款|没回款|应付).*"
)
_CREDIT = re.compile(r".*(?:额度|授信|信用|还能下多少|能赊多少|可用金额).*")
_CONTRACTS = re.compile(r".*合同.*")
_LEAD = re.compile(r"^(?:报备|客户报备|报个备|登记客户|新客户报备|客户登记)\s*(?P<rest>.*)$")
_BIND = re.compile(r"^(?:绑定账号|绑定|bind)\s*(?P<code>\S*)", re.I)
_ARBITRATE = re.compile(r"(?:申请)?仲裁")
_QUESTION = re.compile(r"吗|呢|吧|么|啥|什么|怎么|为什么|哪|谁|几|天气|时间|你是|是不是|能不能|可不可以")
_NOT_GOODS = re.compile(r"问题|事|空|时间|人|办法|意思|消息|通知|结果|进展|优惠|活动")  # 有问题吗, 有空吗
_PRODUCT_MAX = 24


def understand(text: str) -> Understanding:
    """The intent of one message (see the module doc)."""
    t = normalize(text)
    if not t:
        asked = unicodedata.normalize("NFKC", text).strip()
        if asked and set(asked) <= {"?"}:  # a lone "？": what can you do
            return Understanding("help", {}, "帮助")
        return Understanding("unknown")
    for rule in _RULES:
        found = rule(t)
        if found is not None:
            return found
    return Understanding("unknown")


def _bind(t: str) -> Understanding | None:
    m = _BIND.match(t)
    if m is None:
        return None
    return Understanding("bind", {"code": m["code"]} if m["code"] else {}, f"绑定 {m['code']}".strip())


def _lead(t: str) -> Understanding | None:
    m = _LEAD.match(t)
    if m is None:
        return None
    return Understanding("lead", {"rest": m["rest"]} if m["rest"] else {}, f"报备 {m['rest']}".strip())


def _approve_or_reject(t: str) -> Understanding | None:
    m = _ORDER_NO.search(t)
    if m is None:
        a = _APPROVE_PICK.fullmatch(t)
        if a is not None:
            slots = {"index": a["index"]} if a["index"] else {}
            return Understanding("approve", slots, f"通过 {a['index'] or ''}".strip())
        r = _REJECT_PICK.fullmatch(t)
        if r is not None:
            slots = {k: v for k, v in (("index", r["index"]), ("reason", r["reason"])) if v}
            return Understanding("reject", slots, " ".join(["驳回", *slots.values()]))
        return None
    number = m[0].upper()
    rest = (t[: m.start()] + " " + t[m.end() :]).strip()
    if _REJECT.search(rest):
        reason = _REJECT.sub("", rest, count=1).strip(" ,，:：。")
        reason = re.sub(r"^(?:把|将|订单|这单|这个单子|吧|掉)+|(?:吧|掉)$", "", reason).strip(" ,，:：。")
        slots = {"number": number} | ({"reason": reason} if reason else {})
        return Understanding("reject", slots, f"驳回 {number} {reason}".strip())
    if _APPROVE.search(rest):
        return Understanding("approve", {"number": number}, f"通过 {number}")
    return Understanding("order_detail", {"number": number}, f"查订单 {number}")


def _review(t: str) -> Understanding | None:
    return Understanding("review", {}, "审核") if _REVIEW.fullmatch(t) else None


def _simple(intent: str, pattern: re.Pattern[str], command: str):  # type: ignore[no-untyped-def]
    def rule(t: str) -> Understanding | None:
        return Understanding(intent, {}, command) if pattern.fullmatch(t) else None

    return rule


def _order(t: str) -> Understanding | None:
    m = _ORDER_FOR.match(t)
    if m is not None:
        slots = {"distributor": m["dist"]} | ({"items": _items_slot(m["rest"])} if m["rest"] else {})
        return Understanding("order", slots, f"下单 {m['dist']}")
    m = _ORDER.match(t)
    if m is None:
        return None
    rest = m["rest"].strip(" :：,，")
    if not rest:
        return Understanding("order", {}, "下单")
    items = parse_items(rest)
    slots = {"items": _items_slot(rest)} if items else {"distributor": rest}
    return Understanding("order", slots, f"下单 {rest}")


def _items_slot(text: str) -> str:
    items = parse_items(text) or []
    return ",".join(f"{i.text}|{i.qty}|{i.unit or ''}" for i in items)


def _period(last: bool, t: str) -> dict[str, str]:
    m = _MONTH.search(t)
    if m and 1 <= int(m[2]) <= 12:
        return {"period": f"{m[1]}-{int(m[2]):02d}"}
    return {"period": "last"} if last else {}


def _money(t: str) -> Understanding | None:
    last = "上个月" in t or "上月" in t
    for intent, pattern, command in (
        ("statement", _STATEMENT, "对账单"),
        ("rebate", _REBATE, "返利"),
        ("commission", _COMMISSION, "佣金"),
        ("credit", _CREDIT, "额度"),
        ("receivables", _RECEIVABLES, "应收"),
        ("contracts", _CONTRACTS, "合同"),
    ):
        if pattern.fullmatch(t):
            slots = _period(last, t)
            if intent in ("commission", "rebate") and slots:
                command += " 上月" if slots["period"] == "last" else f" {slots['period']}"
            return Understanding(intent, slots, command)
    return None


def _orders(t: str) -> Understanding | None:
    return Understanding("orders", {}, "订单") if _ORDERS.fullmatch(t) else None


def _stock(t: str) -> Understanding | None:
    m = _STOCK_COMMAND.match(t)
    if m is not None and not t.startswith(("查订单", "查询订单")):
        q = _product_words(m["q"])
        return Understanding("stock", {"product": q} if q else {}, f"查库存 {q}".strip())
    for pattern in (_STOCK_TAIL, _STOCK_HAS):
        m = pattern.fullmatch(t)
        if m is not None:
            q = _product_words(m["q"])
            if q and not _QUESTION.search(q) and not _NOT_GOODS.search(q):
                return Understanding("stock", {"product": q}, f"查库存 {q}")
    return None


def _product_words(q: str) -> str:
    q = re.sub(r"^(?:一下|下|查|看看|看一下|现在|目前|的)+", "", q.strip())
    q = re.sub(r"(?:的库存|库存|的货|的|货|吗|呢)+$", "", q)
    return q.strip(" ,，。?？")


def _greeting(t: str) -> Understanding | None:
    if GREETING.fullmatch(t):
        return Understanding("greeting", {}, "你好")
    if THANKS.fullmatch(t):
        return Understanding("thanks", {}, "谢谢")
    return None


def _quantity_only(t: str) -> Understanding | None:
    """A quantity alone ("2.5吨", "三吨", "3"): an answer to "how many?", or a product forgotten."""
    found = parse_qty(t)
    if found is None:
        return None
    return Understanding("quantity", {"qty": str(found[0])} | ({"unit": found[1]} if found[1] else {}))


def _items(t: str) -> Understanding | None:
    return Understanding("items", {"items": _items_slot(t)}) if parse_items(t) else None


def _product(t: str) -> Understanding | None:
    if len(t) > _PRODUCT_MAX or _QUESTION.search(t) or len(t.split()) > 3:
        return None
    if not any(ch.isalnum() for ch in t):
        return None
    return Understanding("product", {"product": t})


_RULES = (
    _bind,
    _lead,
    _simple("help", HELP, "帮助"),
    _simple("cancel", CANCEL, "取消"),
    _simple("arbitrate", _ARBITRATE, "仲裁"),
    _simple("confirm", CONFIRM, "确认"),
    _approve_or_reject,
    _review,
    _order,
    _orders,
    _money,
    _greeting,
    _stock,
    _quantity_only,
    _items,
    _product,
)
