"""Core: config, app factory, CLI, db + kv setup, logging, errors, money, clock.

The innermost package: it may import only the standard library and third-party
packages. The one exception is the composition root (`core.app`, `core.cli`), which
wires handlers, channels, bot, miniapp_api and scheduler together.
"""
