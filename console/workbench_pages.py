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
    chart = {"months": [p.month for p in sales], "net": [float(p.net) for p in sales]}
    return render(request, "workbench.html", {"counts": counts, "chart": chart, "nav": "workbench"})
