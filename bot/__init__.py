"""Inbound chat: per-channel webhooks -> one Message type -> intent router -> handlers.

May import handlers, core and channels (crypto, parsing, replies); never the ORM directly.
"""
