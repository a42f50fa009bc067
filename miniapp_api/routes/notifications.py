"""The caller's inbox and mini-program subscribe grants."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.schema import In, Page, PageQuery
from handlers import notify
from handlers.notify import GrantsOut, NotificationOut, TemplatesOut
from miniapp_api.framework import Api, Ctx

api = Api()

TemplateId = Annotated[str, Field(min_length=1, max_length=128)]


class InboxQuery(PageQuery):
    unread: bool = False


class SubscriptionsIn(In):
    template_ids: Annotated[list[TemplateId], Field(max_length=20)]
    accepted: Annotated[list[TemplateId], Field(max_length=20)] = []


@api.route("GET", "/notifications", query=InboxQuery, response=Page[NotificationOut], tags=("notifications",))
async def inbox(ctx: Ctx) -> Page[NotificationOut]:
    """The caller's notifications, newest first (every push is here too, sent or not)."""
    q: InboxQuery = ctx.query
    return await notify.list_notifications(ctx.me, page=q.page, page_size=q.page_size, unread=q.unread)


@api.route(
    "POST", r"/notifications/{id:\d+}/read", response=NotificationOut, scope="object", tags=("notifications",)
)
async def read(ctx: Ctx) -> NotificationOut:
    """Mark one of the caller's notifications read."""
    return await notify.mark_read(ctx.me, int(ctx.params["id"]))


@api.route("POST", "/subscriptions", body=SubscriptionsIn, response=GrantsOut, tags=("notifications",))
async def subscriptions(ctx: Ctx) -> GrantsOut:
    """Record the mini-program's subscribe prompt: one accepted template = one message."""
    body: SubscriptionsIn = ctx.body
    return await notify.record_subscriptions(ctx.me, body.template_ids, body.accepted)


@api.route("GET", "/subscriptions/templates", response=TemplatesOut, tags=("notifications",))
async def templates(ctx: Ctx) -> TemplatesOut:
    """The subscribe template ids the mini-app should ask the user to accept."""
    return notify.list_subscribe_templates()
