"""帮助 (per role), 你好 / 谢谢 (a few words, not the help), 绑定 <邀请码>, 取消; platform
events; pictures and other non-text messages; the fallback: a bare product name ("水泥") is a
stock lookup, other unknown text gets the sender's help, never silence."""

from __future__ import annotations

from bot.intents import stock
from bot.message import ACK, Reply
from bot.router import BIND_HINT, ChatContext, Router
from bot.understand import understand
from core.errors import InvalidState, ValidationError
from handlers.actor import Actor, Role
from handlers.identity import bind_identity

router = Router("base")

HELP = (
    "渠道助手可以帮您：\n"
    "• 查库存 螺纹钢Φ12（也可以问“螺纹钢还有货吗”“有没有盘螺8的”，或只发商品名）\n"
    "• 报备 客户名称 电话 [信用代码] [项目]\n"
    "• 下单（按提示发送商品和数量，如“螺纹钢Φ12 5吨，水泥 100袋”，确认后提交）\n"
    "• 订单 / 查订单 SO202611230001\n"
    "• 佣金 / 本月佣金\n"
    "• 合同\n"
    "• 取消（结束当前操作）"
)
# What each role can do here, with the words it would use (README: "What the bot understands").
HELP_BY_ROLE = {
    Role.sales: (
        "渠道助手可以帮您（业务员）：\n"
        "• 查库存：“水泥”“有没有盘螺8的”“螺纹钢12还有货吗”\n"
        "• 报备客户：报备 客户名称 电话 [信用代码] [项目]\n"
        "• 代客下单：下单 → 选经销商 → “螺纹钢12 三吨 水泥 100袋” → 确认\n"
        "• 订单：“订单”“查订单 SO202611230001”\n"
        "• 佣金：“本月佣金”“上个月提成多少”\n"
        "• 客户的应收、额度：“应收”“额度”\n"
        "• 合同、对账单：“合同”“对账单”\n"
        "• 取消（结束当前操作）"
    ),
    Role.distributor: (
        "渠道助手可以帮您（经销商）：\n"
        "• 查库存：“水泥”“有没有盘螺8的”“螺纹钢12还有货吗”\n"
        "• 下单：“下单 螺纹钢12 三吨 水泥 100袋” → 确认\n"
        "• 订单：“订单”“查订单 SO202611230001”\n"
        "• 返利：“返利”“上月返利”\n"
        "• 对账单、应收、信用额度：“对账单”“应收”“额度”\n"
        "• 报备客户：报备 客户名称 电话 [信用代码] [项目]\n"
        "• 合同；取消（结束当前操作）"
    ),
    Role.manager: (
        "渠道助手可以帮您（经理）：\n"
        "• 审核订单：“审核”列出待审核订单，回复“通过 1”或“驳回 1 原因”（也可写单号）\n"
        "• 订单：“订单”“查订单 SO202611230001”\n"
        "• 查库存：“水泥”“有没有盘螺8的”\n"
        "• 经销商的应收、额度：“应收”“额度”\n"
        "• 合同、对账单：“合同”“对账单”\n"
        "• 取消（结束当前操作）"
    ),
}
HELP_BY_ROLE[Role.admin] = HELP_BY_ROLE[Role.manager].replace("（经理）", "（管理员）")
WELCOME = "欢迎使用渠道助手！"
MEDIA = "暂时只能看懂文字消息，请用文字告诉我您要做什么。\n发送“帮助”查看用法。"
UNKNOWN = "没听懂您的意思。"
GREETING = "您好{name}！有什么可以帮您？比如查库存、下单、查订单，发送“帮助”查看全部。"
THANKS = "不客气，有需要随时找我。"


def help_for(actor: Actor | None) -> str:
    if actor is None:
        return f"{BIND_HINT}\n\n{HELP}"
    return HELP_BY_ROLE.get(actor.role, HELP)


@router.command("帮助", "help", "菜单", "?", "？", needs_actor=False)
async def handle_help(ctx: ChatContext, _: str) -> str:
    return help_for(ctx.actor)


@router.command("你好", needs_actor=False)
async def handle_greeting(ctx: ChatContext, _: str) -> str:
    """你好 / 在吗 / 早上好: a short answer, not the whole help."""
    if ctx.actor is None:
        return f"您好！{BIND_HINT}"
    name = f"，{ctx.actor.display_name}" if ctx.actor.display_name else ""
    return GREETING.format(name=name)


@router.command("谢谢", needs_actor=False)
async def handle_thanks(ctx: ChatContext, _: str) -> str:
    """谢谢 / 好的 / 收到: acknowledged in a few words."""
    return THANKS


@router.command("绑定", "bind", needs_actor=False)
async def handle_bind(ctx: ChatContext, code: str) -> str:
    sender = ctx.message.sender_id
    if not sender:
        return "外部联系人不能绑定账号，请用本企业的账号联系我。"
    if not code:
        return "请发送：绑定 邀请码（邀请码由管理员提供）"
    try:
        user = await bind_identity(ctx.message.channel, sender, code.split()[0])
    except ValidationError:
        return "邀请码无效、已过期或已被使用，请向管理员重新索取。"
    except InvalidState as exc:
        if "another user" in exc.message:
            return "这个账号已经绑定了其他用户，如需更换请联系管理员。"
        return "您的账号已停用，请联系管理员。"
    return f"绑定成功！{user.display_name}，您好。\n\n{HELP_BY_ROLE.get(Role(user.role), HELP)}"


@router.command("取消", "算了", needs_actor=False)
async def handle_cancel(ctx: ChatContext, _: str) -> str:
    if ctx.actor is not None:
        await ctx.conversation.clear()
    return "好的，已取消。"


@router.event("subscribe", "enter_agent")
async def handle_subscribe(ctx: ChatContext, _: str | None) -> Reply:
    if ctx.message.event and ctx.message.event.lower() == "enter_agent":
        return ACK  # WeCom sends it every time the app is opened
    if ctx.actor is None:
        return Reply(f"{WELCOME}\n{BIND_HINT}")
    return Reply(f"{WELCOME}\n\n{help_for(ctx.actor)}")


@router.event("click")
async def handle_menu_click(ctx: ChatContext, key: str | None) -> str:
    return help_for(ctx.actor)


@router.event("*")
async def handle_other_event(ctx: ChatContext, _: str | None) -> Reply:
    """unsubscribe, subscribe_msg_popup_event, TEMPLATESENDJOBFINISH, VIEW, LOCATION...:
    acknowledged, nothing to say."""
    return ACK


@router.fallback
async def handle_unknown(ctx: ChatContext, text: str) -> str:
    if ctx.message.kind not in ("text", "voice") or not text:
        return MEDIA
    understood = understand(text)
    if understood.intent == "quantity":
        return f"“{text}”是数量，还要告诉我商品，例如：螺纹钢12 {text}（下单请先发送“下单”）。"
    if understood.intent == "product" and ctx.actor is not None:
        found = await stock.answer_if_known(ctx, understood.slots["product"])
        if found is not None:  # a bare product name ("水泥"): its stock
            return found
    return f"{UNKNOWN}\n\n{help_for(ctx.actor)}"
