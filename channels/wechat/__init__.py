"""WeChat Official Account and mini-program: crypto, parser, replies, client, webhook.

Submodules are imported explicitly (`from channels.wechat.crypto import WeChatCrypto`), so
importing the package stays cheap and free of aiohttp.
"""
