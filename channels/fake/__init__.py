"""A local stand-in for the WeChat, WeCom and DingTalk HTTP APIs (see `channels.fake.app`)."""
