"""The access log: one JSON line per request (orjson), buffered (written in batches, not per
request), and switched off by `[server] access_log = false`."""

from __future__ import annotations

import io

import orjson

from core.app import create_app
from core.keys import ACCESS_LOG


async def _app_client(config, aiohttp_client, on: bool):  # type: ignore[no-untyped-def]
    cfg = config.with_overrides({"server": {"access_log": on}, "logging": {"level": "INFO"}})
    app = create_app(cfg, scheduler=False)
    stream = io.BytesIO()
    app[ACCESS_LOG].stream = stream
    return app, await aiohttp_client(app), stream


async def test_access_log_when_on_writes_buffered_json_lines(config, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    app, client, stream = await _app_client(config, aiohttp_client, True)
    resp = await client.get("/healthz", headers={"X-Request-Id": "req-1"})
    assert resp.status == 200
    assert stream.getvalue() == b""  # buffered: not one write per request
    app[ACCESS_LOG].flush()
    [line] = stream.getvalue().splitlines()
    entry = orjson.loads(line)
    assert entry["event"] == "http_request" and entry["path"] == "/healthz" and entry["status"] == 200
    assert entry["request_id"] == "req-1" and entry["method"] == "GET" and "duration_ms" in entry


async def test_access_log_when_off_writes_nothing(config, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    app, client, stream = await _app_client(config, aiohttp_client, False)
    assert (await client.get("/healthz")).status == 200
    app[ACCESS_LOG].flush()
    assert stream.getvalue() == b""


async def test_access_log_when_level_above_info_writes_nothing(config, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    app = create_app(config.with_overrides({"logging": {"level": "WARNING"}}), scheduler=False)
    assert not app[ACCESS_LOG].enabled


async def test_access_log_when_app_stops_is_flushed(config, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    _app, client, stream = await _app_client(config, aiohttp_client, True)
    assert (await client.get("/healthz")).status == 200
    await client.close()
    assert b'"path":"/healthz"' in stream.getvalue()


async def test_serve_start_when_done_freezes_the_heap() -> None:
    import gc

    from core.app import _freeze_heap

    try:
        await _freeze_heap(None)  # type: ignore[arg-type]
        assert gc.get_freeze_count() > 0  # start-up objects out of the collector's scans
    finally:
        gc.unfreeze()
