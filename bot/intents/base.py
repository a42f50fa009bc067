"""帮助, 绑定 <邀请码>, 取消; platform events; pictures and other non-text messages; the
fallback (unknown text gets help, never silence)."""

from __future__ import annotations

from bot.message import ACK, Reply
from bot.router import BIND_HINT, ChatContext, Router
from core.errors import InvalidState, ValidationError
from handlers.identity import bind_identity

router = Router("base")

HELP = (
    "渠道助手可以帮您：\n"
    "• 查库存 螺纹钢Φ12（也可以问“螺纹钢还有货吗”）\n"
    "• 报备 客户名称 电话 [信用代码] [项目]\n"
    "• 下单（按提示发送商品和数量，如“螺纹钢Φ12 5吨，水泥 100袋”，确认后提交）\n"
    "• 订单 / 查订单 SO202611230001\n"
    "• 佣金 / 本月佣金\n"
    "• 合同\n"
    "• 取消（结束当前操作）"
)
WELCOME = "欢迎使用渠道助手！"
MEDIA = "暂时只能看懂文字消息，请用文字告诉我您要做什么。\n发送“帮助”查看用法。"
UNKNOWN = "没听懂您的意思。"


@router.command("帮助", "help", "菜单", "?", "？", needs_actor=False)
async def handle_help(ctx: ChatContext, _: str) -> str:
    if ctx.actor is None:
        return f"{BIND_HINT}\n\n{HELP}"
    return HELP


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
    return f"绑定成功！{user.display_name}，您好。\n\n{HELP}"


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
    return Reply(f"{WELCOME}\n\n{HELP}")


@router.event("click")
async def handle_menu_click(ctx: ChatContext, key: str | None) -> str:
    return HELP


@router.event("*")
async def handle_other_event(ctx: ChatContext, _: str | None) -> Reply:
    """unsubscribe, subscribe_msg_popup_event, TEMPLATESENDJOBFINISH, VIEW, LOCATION...:
    acknowledged, nothing to say."""
    return ACK


@router.fallback
async def handle_unknown(ctx: ChatContext, text: str) -> str:
    if ctx.message.kind not in ("text", "voice") or not text:
        return MEDIA
    return f"{UNKNOWN}\n\n{HELP}"
