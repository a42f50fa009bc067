"""`qudao chat`: the terminal simulator talks to a running server like the platform would."""

from __future__ import annotations

import argparse

import pytest

from core.cli_chat import chat, simulator
from core.config import Config
from core.errors import ConfigError
from tests.factories import make_world
from tests.test_bot_support import (
    Chat,
    bot_overrides,
    fast_hashes,  # noqa: F401  (autouse)
)


@pytest.fixture
def config(config: Config) -> Config:
    return config.with_overrides(bot_overrides())


def args(
    url: str, channel: str = "wechat", user: str = "o_cli", *messages: str, **kw: object
) -> argparse.Namespace:
    base = {"channel": channel, "user": user, "url": url, "plain": False, "json": False, "bind_as": None}
    return argparse.Namespace(**(base | kw | {"message": list(messages)}))


@pytest.mark.parametrize(
    ("channel", "extra"), [("wechat", {}), ("wechat", {"json": True}), ("wecom", {}), ("dingtalk", {})]
)
async def test_chat_command_round_trips(client, config: Config, capsys, channel: str, extra: dict) -> None:
    world = await make_world()
    await Chat(client, channel).bind("cli_user", world.east.rep)
    url = str(client.make_url("")).rstrip("/")
    assert await chat(config, args(url, channel, "cli_user", "帮助", "合同", **extra)) == 0
    out = capsys.readouterr().out
    assert "查库存" in out and "合同" in out


async def test_chat_command_needs_the_secrets(config: Config) -> None:
    empty = config.with_overrides({"wechat": {"token": ""}, "dingtalk": {"app_secret": ""}})
    for channel in ("wechat", "dingtalk"):
        with pytest.raises(ConfigError, match="QUDAO_WECHAT__TOKEN"):
            simulator(empty, args("http://x", channel))


async def test_chat_command_reports_a_refusal(client, config: Config, capsys) -> None:
    wrong = config.with_overrides({"wechat": {"token": "not-the-servers-token"}})
    url = str(client.make_url("")).rstrip("/")
    assert await chat(wrong, args(url, "wechat", "o_cli", "帮助")) == 1
    assert "refused" in capsys.readouterr().err
