"""DingTalk robots, event subscriptions and work notifications: crypto, parser, client, webhook."""
