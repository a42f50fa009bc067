"""The app shell: health, readiness, metrics, request ids, error JSON, body limit."""

from __future__ import annotations

import io

import pytest
from aiohttp import web

from core.app import create_app
from core.config import Config
from core.keys import KV_STORE
from core.schema import In
from miniapp_api.framework import Api, Ctx


class Echo(In):
    name: str
    qty: int


def _app_with_echo(config: Config) -> web.Application:
    app = create_app(config, scheduler=False)
    api = Api()

    @api.route("POST", "/_test/echo", body=Echo, auth=False)
    async def echo(ctx: Ctx) -> Echo:
        return ctx.body

    api.mount(app)
    return app


async def test_healthz_and_readyz(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"] == {"db": "ok", "kv": "ok"}


async def test_readyz_reports_a_dead_kv(client, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_pong() -> bool:
        return False

    monkeypatch.setattr(client.app[KV_STORE], "ping", no_pong)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["checks"]["kv"].startswith("error")


async def test_metrics_count_requests(client) -> None:
    await client.get("/healthz")
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200
    assert 'qudao_http_requests_total{method="GET",route="/healthz",status="200"}' in text


async def test_request_id_is_echoed_or_made(client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith junk"})
    assert len(resp.headers["X-Request-Id"]) == 32


async def test_unknown_api_path_is_json_404(client) -> None:
    resp = await client.get("/api/v1/no/such/thing")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_openapi_and_docs(client) -> None:
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/ping" in spec["paths"]
    docs = await client.get("/api/docs")
    assert docs.status == 200 and "openapi.json" in await docs.text()


@pytest.fixture
async def echo_client(config: Config, aiohttp_client):  # type: ignore[no-untyped-def]
    return await aiohttp_client(_app_with_echo(config))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"name": "x"}', "qty"),
        (b'{"name": "x", "qty": "many"}', "qty"),
        (b'{"name": "x", "qty": 1, "price": "0.01"}', "price"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(echo_client, body: bytes, field: str) -> None:
    resp = await echo_client.post("/_test/echo", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["code"] == "validation_error"
    assert field in err["message"]


async def test_good_body_round_trips(echo_client) -> None:
    resp = await echo_client.post("/_test/echo", json={"name": " 螺纹钢 ", "qty": 3})
    assert resp.status == 200
    assert await resp.json() == {"name": "螺纹钢", "qty": 3}


async def test_body_over_limit_is_413(echo_client) -> None:
    big = io.BytesIO(b'{"name": "' + b"x" * 2_000_000 + b'", "qty": 1}')
    resp = await echo_client.post("/_test/echo", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_chunked_body_over_limit_is_413(echo_client) -> None:
    async def gen():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    resp = await echo_client.post("/_test/echo", data=gen())
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_wrong_method_is_json_405(client) -> None:
    resp = await client.delete("/healthz")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"
