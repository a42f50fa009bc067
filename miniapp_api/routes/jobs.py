"""Run a scheduled job now (admin, manager)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.schema import In
from handlers.jobs import JobRunOut, run_job
from miniapp_api.framework import Api, Ctx

api = Api()


class JobParams(In):
    period: (
        Annotated[
            str,
            Field(
                pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                description="YYYY-MM; commission_statements: a month that has ended (else 400)",
            ),
        ]
        | None
    ) = None


@api.route(
    "POST",
    "/admin/jobs/{name}/run",
    body=JobParams,
    response=JobRunOut,
    roles={"admin", "manager"},
    tags=("admin", "jobs"),
)
async def run(ctx: Ctx) -> JobRunOut:
    """Run a job to completion: {job, started_at, finished_at, result}; unknown job -> 404."""
    body: JobParams = ctx.body
    out = await run_job(ctx.params["name"], body.model_dump(exclude_none=True), trigger="manual")
    assert out is not None  # manual runs wait for the lock or raise
    return out
