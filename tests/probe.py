"""Exit 0 when the PostgreSQL and Redis that the server-backend tests use both answer."""

from __future__ import annotations

import asyncio
import os
import sys


async def main() -> int:
    import asyncpg
    import redis.asyncio as redis

    pg = os.environ.get("QUDAO_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
    rd = os.environ.get("QUDAO_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(pg.replace("postgres://", "postgresql://", 1)), 5)
        await conn.close()
        client = redis.from_url(rd)
        try:
            await asyncio.wait_for(client.ping(), 5)
        finally:
            await client.aclose()
    except Exception as exc:
        print(f"probe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
