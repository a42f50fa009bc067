"""BOLA case for running a job: admin and managers only (others 403)."""

from __future__ import annotations

from tests.bola import Case, Probe


async def _run(world, client) -> Probe:  # type: ignore[no-untyped-def]
    return Probe("/admin/jobs/overstock/run", body={})


CASES: dict[tuple[str, str], Case] = {
    ("POST", "/admin/jobs/{name}/run"): Case(_run, kind="self"),
}
