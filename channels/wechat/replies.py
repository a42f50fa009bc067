"""Passive replies to WeChat pushes (the HTTP response body), as XML strings.

Built by hand rather than with wechatpy.replies: its CDATA fields do not escape "]]>", and
reply text can contain user input (product names, customer names).
"""

from __future__ import annotations

import re
import time

from channels.wechat.crypto import cdata
from channels.wechat.parser import WeChatMessage

# "success" (or an empty body) means "received, no reply" and is never encrypted.
SUCCESS = "success"

# Characters XML 1.0 forbids even inside CDATA; one of them would make WeChat reject the reply.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def text_reply(to_user: str, from_user: str, content: str, *, create_time: int | None = None) -> str:
    """`<xml><ToUserName/><FromUserName/><CreateTime/><MsgType>text</MsgType><Content/></xml>`."""
    created = int(time.time()) if create_time is None else create_time
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(created)}</CreateTime>"
        f"<MsgType>{cdata('text')}</MsgType>"
        f"<Content>{cdata(_NOT_XML_CHAR.sub('', content))}</Content></xml>"
    )


def text_reply_to(msg: WeChatMessage, content: str, *, create_time: int | None = None) -> str:
    """Answer `msg`: to its sender, from the account it was sent to."""
    return text_reply(msg.from_user_name, msg.to_user_name, content, create_time=create_time)
