"""OpenAPI 3.1 generated from the route table and the same pydantic models that parse input."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from core.schema import MAX_ID
from miniapp_api.framework import Route
from miniapp_api.xlsx import XLSX_TYPE

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
REF = "#/components/schemas/{model}"


def build_openapi(routes: list[Route], prefix: str = "/api/v1", title: str = "Qudao API") -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for r in routes:
        path = prefix + _PARAM.sub(r"{\1}", r.path)
        op: dict[str, Any] = {
            "operationId": f"{r.method.lower()}_{_slug(r.path)}",
            "summary": r.summary,
            "tags": list(r.tags) or [r.path.strip("/").split("/")[0] or "root"],
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": _path_schema(r.path, n)}
                for n in _PARAM.findall(r.path)
            ],
            "responses": _responses(r, schemas),
        }
        if r.query is not None:
            op["parameters"] += _query_params(r.query, schemas)
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(r.body, schemas, "validation")}},
            }
        for header in r.extra.get("headers", ()):
            op["parameters"].append(
                {
                    "name": header,
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            )
        if r.auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", _PARAM.sub(r"\1", path).lower()).strip("_") or "root"


def _path_schema(path: str, name: str) -> dict[str, Any]:
    m = re.search(r"{" + name + r":([^}]*)}", path)
    if m and m.group(1) in (r"\d+", "[0-9]+"):
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {"type": "string"}


def _schema(model: Any, schemas: dict[str, Any], mode: str) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        _, defs = models_json_schema([(model, mode)], ref_template=REF)
        schemas.update(defs.get("$defs", {}))
        return {"$ref": REF.format(model=model.__name__)} if model.__name__ in schemas else defs
    schema = TypeAdapter(model).json_schema(mode=mode, ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    return schema


def _query_params(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    full = model.model_json_schema(mode="validation", ref_template=REF)
    schemas.update(full.pop("$defs", {}))
    required = set(full.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in full.get("properties", {}).items()
    ]


ERROR_DESCRIPTIONS = {
    "429": "rate_limited: too many requests; retry after Retry-After seconds",
    "503": "unavailable: the database, the kv store or a platform is down or too slow; "
    "retry after Retry-After seconds",
}
RETRY_AFTER_HEADER = {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}


def _responses(r: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    out: dict[str, Any] = {}
    if r.raw:
        content = r.extra.get("content", {"application/json": {}})
        out[str(r.status)] = {"description": "OK", "content": content}
    elif r.response is None:
        out[str(r.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    else:
        schema = _schema(r.response, schemas, "serialization")
        out[str(r.status)] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
    # 401 on public routes too (a wrong password); 503 `unavailable` when the database, the
    # kv store or a platform behind us is down or too slow (retry after Retry-After seconds).
    codes = ["400", "401", "404", "409", "413", "422", "429", "503"]
    if r.auth:
        codes.append("403")
    for code in codes:
        out[code] = {"description": ERROR_DESCRIPTIONS.get(code, "error"), "content": err}
        if code in ("429", "503"):
            out[code]["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    if r.query is not None and "format" in r.query.model_fields:
        ok = out[str(r.status)].setdefault("content", {})
        ok[XLSX_TYPE] = {"schema": {"type": "string", "format": "binary"}}
    return out


DOCS_HTML = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Qudao API</title>
<style>body{font:14px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}
code{background:#f4f4f4;padding:1px 4px}h2{border-bottom:1px solid #ddd}.m{display:inline-block;
width:4em;font-weight:bold}.get{color:#0a7}.post{color:#07c}.put{color:#a70}.delete{color:#c33}
.patch{color:#a0a}</style></head><body><h1>Qudao API <small>/api/v1</small></h1>
<p>Machine-readable: <a href="/api/v1/openapi.json"><code>/api/v1/openapi.json</code></a>.
Auth: <code>Authorization: Bearer &lt;token&gt;</code>. Errors:
<code>{"error": {"code", "message", "details"}}</code>.</p><div id="ops">loading…</div>
<script>
fetch('/api/v1/openapi.json').then(r=>r.json()).then(spec=>{
  const byTag={};
  for(const [p,ops] of Object.entries(spec.paths)) for(const [m,op] of Object.entries(ops)){
    (byTag[op.tags[0]]=byTag[op.tags[0]]||[]).push([m,p,op]);}
  const esc=s=>String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  document.getElementById('ops').innerHTML=Object.entries(byTag).map(([t,l])=>
    '<h2>'+esc(t)+'</h2>'+l.map(([m,p,op])=>'<div><span class="m '+m+'">'+m.toUpperCase()+
    '</span><code>'+esc(p)+'</code> '+esc(op.summary||'')+(op.security?'':' <em>(public)</em>')+
    '</div>').join('')).join('');
});
</script></body></html>"""
