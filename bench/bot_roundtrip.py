"""Bot round trip: an encrypted WeChat message in, an encrypted reply out, at 50 concurrent senders.

A real server (a subprocess on a free port, SQLite + in-process kv by default) holds the demo
catalogue and 50 bound sales reps. Every payload is built beforehand exactly as WeChat builds
a safe-mode push (AES-256-CBC, msg_signature), each with its own MsgId so none is a
redelivery; each sender then sends its messages back to back ("查库存 <product>": fuzzy match,
scope, stock read) and the time runs until the reply is verified and decrypted. Senders behave
like people: after a reply each thinks ~2 s (0.5-1.5x, `--think`) before the next message, so
50 senders offer ~25 msg/s; `--think 0` sends back to back (a saturation test, where latency
is queueing: 50 / throughput). The last line compares p99 with WeChat's 5-second deadline.

    python -m bench.bot_roundtrip [--senders 50] [--messages 10] [--think 2] [--db URL --kv URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.loadgen import serve
from bot.simulator import SimRequest, WeChatSimulator

TOKEN, AES_KEY, APPID = "bench-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxbench000000000"
DEADLINE_MS = 5000.0
TARGET_P99_MS = 100.0
QUERIES = ("查库存 螺纹钢Φ12", "查库存 水泥 散装", "查库存 lwg16", "螺纹钢Φ20还有货吗", "帮助")


def server_env(db_url: str, kv_url: str) -> dict[str, str]:
    return {
        "QUDAO_DATABASE__URL": db_url,
        "QUDAO_KV__URL": kv_url,
        "QUDAO_KV__NAMESPACE": f"bench-bot-{int(time.time())}",
        "QUDAO_WECHAT__TOKEN": TOKEN,
        "QUDAO_WECHAT__ENCODING_AES_KEY": AES_KEY,
        "QUDAO_WECHAT__APPID": APPID,
        "QUDAO_LIMITS__CHAT_PER_SENDER_PER_MIN": "100000",
        "QUDAO_SCHEDULER__ENABLED": "false",
        "QUDAO_LOGGING__LEVEL": "ERROR",
    }


async def prepare(db_url: str, kv_url: str, senders: int) -> list[str]:
    """Migrate, load the demo data and bind one WeChat openid per sender to a sales rep."""
    from core import runtime as rt
    from core.config import Config
    from core.db import init_db, migrate_db
    from core.kv import open_kv
    from handlers.demo import seed_demo
    from handlers.identity import bind_identity, issue_invite_code
    from models.base import UserRole
    from models.user import User

    await migrate_db(db_url)
    ctx = await init_db(db_url)
    kv = open_kv(kv_url, namespace="bench-bot-setup")
    rt.install(rt.Runtime(config=Config(), kv=kv, instance_id="bench"))
    try:
        await seed_demo()
        reps = await User.filter(role=UserRole.SALES).order_by("id")
        openids = []
        for i in range(senders):
            openid = f"o_bench_{i:04d}"
            invite = await issue_invite_code(None, reps[i % len(reps)].id)
            await bind_identity("wechat", openid, invite.code)
            openids.append(openid)
        return openids
    finally:
        rt.install(None)
        await kv.flush_namespace()
        await kv.close()
        await ctx.close_connections()


async def sender(
    http: aiohttp.ClientSession,
    base: str,
    sim: WeChatSimulator,
    reqs: list[SimRequest],
    out: list[float],
    think: float = 0.0,
    seed: int = 0,
) -> int:
    """One person: send, wait for the reply, think (0.5-1.5 x `think` seconds), send again."""
    rng = random.Random(seed)
    failures = 0
    if think:
        await asyncio.sleep(rng.uniform(0, think))  # people do not all start at the same instant
    for req in reqs:
        t0 = time.perf_counter()
        async with http.post(base + req.path, params=req.params, data=req.body.encode()) as resp:
            body = await resp.text()
            status = resp.status
        reply = sim.read_reply(status, body)  # verify + decrypt: part of the round trip
        elapsed = (time.perf_counter() - t0) * 1000
        if reply:
            out.append(elapsed)
        else:
            failures += 1
        if think:
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think)
    return failures


async def load(base: str, openids: list[str], messages: int, think: float) -> tuple[list[float], int, float]:
    sim = WeChatSimulator(TOKEN, AES_KEY, APPID)
    warm = {o: [sim.text(o, "帮助")] for o in openids}
    plan = {
        o: [sim.text(o, QUERIES[(i + j) % len(QUERIES)]) for j in range(messages)]
        for i, o in enumerate(openids)
    }
    connector = aiohttp.TCPConnector(limit=len(openids))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(sender(http, base, sim, warm[o], []) for o in openids))
        latencies: list[float] = []
        started = time.perf_counter()
        failed = await asyncio.gather(
            *(sender(http, base, sim, plan[o], latencies, think, seed=i) for i, o in enumerate(openids))
        )
        seconds = time.perf_counter() - started
    return latencies, sum(failed), seconds


def pct(data: list[float], p: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bot_roundtrip", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--messages", type=int, default=10, help="messages per sender")
    parser.add_argument(
        "--think",
        type=float,
        default=2.0,
        help="mean seconds a person waits between a reply and their next message (0 = back to back)",
    )
    parser.add_argument("--db", help="an EMPTY database URL (default: a temporary SQLite file)")
    parser.add_argument("--kv", default="memory://")
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory(prefix="qudao-bench-bot-") as tmp:
        db_url = args.db or f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        openids = asyncio.run(prepare(db_url, args.kv, args.senders))
        with serve(server_env(db_url, args.kv)) as base:
            latencies, failed, seconds = asyncio.run(load(base, openids, args.messages, args.think))
    if not latencies:
        print("no successful round trips")
        return 1
    p50, p90, p99 = (pct(latencies, p) for p in (50, 90, 99))
    pace = f"thinking ~{args.think:g}s between messages" if args.think else "back to back"
    print(
        f"{len(latencies)} encrypted round trips from {args.senders} concurrent senders ({pace}) in "
        f"{seconds:.1f}s = {len(latencies) / seconds:,.0f} msg/s, failures {failed}"
    )
    print(
        f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {max(latencies):.1f}  "
        f"mean {statistics.fmean(latencies):.1f}   (target p99 < {TARGET_P99_MS:.0f} ms)"
    )
    print(f"p99 {p99:.1f} ms / deadline {DEADLINE_MS:.0f} ms = {p99 / DEADLINE_MS:.4f}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
