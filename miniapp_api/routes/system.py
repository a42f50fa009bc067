"""Public system routes of the API surface."""

from __future__ import annotations

from pydantic import BaseModel

from core.keys import REQUEST_ID
from miniapp_api.framework import Api, Ctx

api = Api()


class Ping(BaseModel):
    ok: bool
    request_id: str


@api.route("GET", "/ping", auth=False, response=Ping, tags=("system",))
async def ping(ctx: Ctx) -> Ping:
    """Liveness of the API sub-app, echoing the request id."""
    return Ping(ok=True, request_id=ctx.request.get(REQUEST_ID, ""))
