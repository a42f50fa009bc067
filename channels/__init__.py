"""Platform clients and crypto: wechat/, wecom/, dingtalk/ (+ fake servers for dev/tests).

Implements the ports `handlers` defines (Notifier, ...). May import core, handlers (port
types only), wechatpy and aiohttp; never models, bot, miniapp_api or scheduler."""
