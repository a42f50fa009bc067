"""工作台: to-do counts and the monthly sales chart."""

from __future__ import annotations

from aiohttp import web

from console.framework import Pages, render
from handlers import workbench
from handlers.actor import Actor

pages = Pages()


@pages.add("GET", "/", name="workbench")
async def home(request: web.Request, actor: Actor) -> web.StreamResponse:
    counts = await workbench.get_todo_counts(actor)
    sales = await workbench.monthly_sales(actor)
    top = (await workbench.top_distributors(actor)).model_dump()
    aging = (await workbench.receivables_by_age(actor)).model_dump()
    charts: dict[str, dict[str, object]] = {
        "sales": {"labels": [p.month for p in sales], "values": [float(p.net) for p in sales]},
        "top": {**top, "name": "净销售额", "horizontal": True},
        "aging": {**aging, "name": "应收余额"},
    }
    charts["sales"]["name"] = "净销售额"
    return render(request, "workbench.html", {"counts": counts, "charts": charts, "nav": "workbench"})
