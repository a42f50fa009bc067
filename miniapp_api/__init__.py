"""REST /api/v1 for the mini-apps and the admin back office: routes, schemas, OpenAPI.

Thin adapters: parse with pydantic, call one use-case in `handlers/` as the caller's Actor,
render. May import handlers and core; never the ORM (no `tortoise`) and never `channels`.
"""
