"""`qudao chat`: a terminal chat with a running server, speaking the platform's protocol.

Every line you type becomes the payload WeChat (safe mode by default), WeCom or DingTalk
would send — signed and encrypted with this config's secrets — and is posted to the
server's /bot webhook; the reply is verified, decrypted and printed. Run `serve` and `chat`
with the same config (the secrets must match, as between a real account and the server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from core.cli import _db, command
from core.config import Config
from core.errors import ConfigError

DEMO_HINT = (
    "the {channel} webhook secrets are empty, so the server refuses every message. For a local demo, "
    "give `serve` and `chat` the same values, e.g.\n"
    "  export QUDAO_WECHAT__TOKEN=demo-token QUDAO_WECHAT__APPID=wxdemo0000000000 "
    "QUDAO_WECHAT__ENCODING_AES_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n"
    "  export QUDAO_WECOM__TOKEN=demo-token QUDAO_WECOM__CORP_ID=wwdemo "
    "QUDAO_WECOM__ENCODING_AES_KEY=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n"
    "  export QUDAO_DINGTALK__APP_SECRET=demo-secret"
)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel", choices=("wechat", "wecom", "dingtalk"), default="wechat")
    p.add_argument("--user", required=True, help="openid (wechat), userid (wecom) or staff id (dingtalk)")
    p.add_argument("--url", help="server base URL (default: http://<server.host>:<server.port>)")
    p.add_argument("--plain", action="store_true", help="wechat: plaintext mode instead of safe mode")
    p.add_argument("--json", action="store_true", help="wechat: mini-program JSON push instead of XML")
    p.add_argument("--bind-as", metavar="USERNAME", help="issue an invite code for USERNAME and bind first")
    p.add_argument("-m", "--message", action="append", help="send this (repeatable) and exit, no prompt")


def simulator(config: Config, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from bot.simulator import DingTalkSimulator, WeChatSimulator, WeComSimulator

    if args.channel == "wechat":
        wx = config.wechat
        encrypted = not args.plain
        if not wx.token or (encrypted and not (wx.encoding_aes_key and wx.appid)):
            raise ConfigError(DEMO_HINT.format(channel="wechat"))
        return WeChatSimulator(
            wx.token, wx.encoding_aes_key, wx.appid, encrypted=encrypted, fmt="json" if args.json else "xml"
        )
    if args.channel == "wecom":
        wc = config.wecom
        if not (wc.token and wc.encoding_aes_key and wc.corp_id):
            raise ConfigError(DEMO_HINT.format(channel="wecom"))
        return WeComSimulator(wc.token, wc.encoding_aes_key, wc.corp_id, wc.agent_id or 1000002)
    if not config.dingtalk.app_secret:
        raise ConfigError(DEMO_HINT.format(channel="dingtalk"))
    return DingTalkSimulator(config.dingtalk.app_secret, config.dingtalk.robot_code or "dingrobotdemo")


@command(
    "chat", "terminal chat simulator: signs/encrypts like the platform, posts to a running server", _args
)
async def chat(config: Config, args: argparse.Namespace) -> int:
    import aiohttp

    from channels.errors import ChannelError
    from handlers.chat import issue_invite_for_username

    sim = simulator(config, args)
    base = (args.url or f"http://{config.server.host}:{config.server.port}").rstrip("/")
    messages: list[str] = list(args.message or [])
    if args.bind_as:
        async with _db(config):
            code = await issue_invite_for_username(args.bind_as)
        messages.insert(0, f"绑定 {code}")
    interactive = not args.message
    if interactive:
        print(f"{args.channel} chat as {args.user} -> {base}/bot/{args.channel}  (帮助: help, Ctrl-D: quit)")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        while True:
            if messages:
                text = messages.pop(0)
                if interactive or args.bind_as:
                    print(f"> {text}")
            elif interactive:
                try:
                    text = (await asyncio.to_thread(input, "> ")).strip()
                except EOFError:
                    print()
                    return 0
                if not text:
                    continue
            else:
                return 0
            try:
                reply = await _send(http, base, sim, args.user, text)
            except aiohttp.ClientError as exc:
                print(f"qudao chat: cannot reach {base}: {exc}", file=sys.stderr)
                return 1
            except ChannelError as exc:  # 401/403/400: wrong secrets, or a server refusing
                print(f"qudao chat: the server refused the message: {exc}", file=sys.stderr)
                return 1
            print(reply if reply is not None else "(acknowledged; the answer, if any, comes as a push)")


async def _send(http, base: str, sim, user: str, text: str) -> str | None:  # type: ignore[no-untyped-def]
    req = sim.text(user, text)
    async with http.request(
        req.method, base + req.path, params=req.params, data=req.body.encode(), headers=req.headers
    ) as resp:
        return sim.read_reply(resp.status, await resp.text())
