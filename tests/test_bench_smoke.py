"""The benchmarks import, expose main(), and the shared load generator works (the benches
themselves run with `python -m bench.<name>`, outside the suite)."""

from __future__ import annotations

import importlib

from aiohttp import web

from bench import loadgen
from bench.loadgen import Req, run_load


def test_benches_import_and_have_main() -> None:
    for name in ("bench.order_admission", "bench.stock_query"):
        module = importlib.import_module(name)
        assert callable(module.main), name
    sql = (importlib.import_module("bench.order_admission").SQL_SCRIPT).read_text(encoding="utf-8")
    assert "BEGIN;" in sql and "COMMIT;" in sql and "on_hand >= reserved + 1" in sql


async def test_loadgen_counts_answers(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, status=200 if request.query.get("i", "0") != "3" else 503)

    app = web.Application()
    app.router.add_get("/x", hello)
    server = await aiohttp_server(app)
    result = await run_load(
        f"http://127.0.0.1:{server.port}",
        lambda w, seq: Req("GET", f"/x?i={seq % 4}"),
        concurrency=2,
        duration=0.3,
        warmup=0.05,
    )
    assert result.ok > 0 and result.statuses[503] > 0 and result.rps > 0
    assert "req/s" in result.summary()
    assert loadgen.free_port() > 0
