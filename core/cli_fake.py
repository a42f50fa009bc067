"""`qudao fake-platform --port P`: a local stand-in for the WeChat, WeCom and DingTalk APIs.

Point `wechat.api_base`, `wecom.api_base`, `dingtalk.api_base` and `dingtalk.oapi_base` at
it. Any mini-program code or DingTalk auth code `demo-<id>` logs in as openid / userid
`<id>`; `GET /_fake/messages` lists every call it received (see channels/fake/app.py)."""

from __future__ import annotations

import argparse

from core.cli import command
from core.config import Config


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)


@command("fake-platform", "run a fake WeChat/WeCom/DingTalk API server that records every call", _args)
def fake_platform(config: Config, args: argparse.Namespace) -> int:
    from aiohttp import web

    from channels.fake.app import create_fake_app

    print(
        f"fake platform on http://{args.host}:{args.port}  (calls: /_fake/messages; "
        "login codes demo-<openid> / demo-<userid>)",
        flush=True,
    )
    web.run_app(create_fake_app(), host=args.host, port=args.port, access_log=None, print=None)
    return 0
