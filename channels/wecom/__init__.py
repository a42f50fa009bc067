"""WeCom (企业微信) app callbacks and messages: crypto, parser, client, webhook.

The callback crypto is WeChat's AES scheme with receive_id = corp_id; see
`channels.wechat.crypto`.
"""
