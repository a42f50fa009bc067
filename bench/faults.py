"""`make faults` / `python -m bench.faults`: fault experiments against throw-away servers.

Starts its own PostgreSQL (initdb into a temp dir, as the `postgres` user when run as root)
and Redis on free 127.0.0.1 ports — never the shared ones — seeds a small shop (bench's
seed), starts the service (`bench.loadgen serve`) and, while order bursts and stock reads
run, scripts the experiments:

- kill -9 of the service during an order burst, restart, replay every request that got no
  answer with its Idempotency-Key;
- PostgreSQL stop + restart, and freeze (SIGSTOP of every server process) + thaw;
- Redis kill + restart (empty), and freeze + thaw;
- two instances on one database, both taking orders;
- an outbox drainer killed with SIGKILL in the middle of its pushes (bench.faults_push);
- SQLite (the embedded default) on a read-only mount and on a full disk, in a mount
  namespace of its own (bench.faults_disk; needs root, else the row says "skipped").

After each experiment it replays every order that got no answer (or a 5xx) with its
Idempotency-Key and checks the DESIGN §8 invariants in the database: no oversold or
negative stock, the stock ledger balances, one order per Idempotency-Key, every 201 answer
names an order that exists, replays answer the same order, and no distributor's exposure
over its credit limit (distributor 1's limit is set low, so the bursts run into it). A 500
in the service log counts as a violation. The table: experiment, requests, errors by
status, slowest answer, recovery time (repair -> first success), invariant violations
(must be 0) and lost / duplicated pushes (must be 0). Exit 1 on any violation. Bounded:
about five minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.loadgen import free_port, wait_ready

SKUS = 20
BURST_S = 9.0  # each experiment: fault after a third, repair after two thirds, then a third more
CONCURRENCY = 8


# --- throw-away servers ---------------------------------------------------------------------


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    raise SystemExit(f"faults: {name} not found (install PostgreSQL server binaries)")


def _as_postgres() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: switch to the `postgres` user (no su/runuser in
    between — they stop themselves when their child is SIGSTOPped)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class Postgres:
    def __init__(self, root: Path) -> None:
        self.dir = root / "pg"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def init(self) -> None:
        self.dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.dir.parent, "postgres", "postgres")
        subprocess.run(
            [_bin("initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust"],
            check=True,
            stdout=subprocess.DEVNULL,
            **_as_postgres(),
        )

    def start(self) -> None:
        cmd = [
            _bin("postgres"), "-D", str(self.dir / "data"), "-p", str(self.port), "-k", str(self.dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=100",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_as_postgres()
        )
        _wait_port(self.port)

    def pids(self) -> list[int]:
        """The postmaster and its children (the processes SIGSTOP must reach)."""
        pidfile = self.dir / "data" / "postmaster.pid"
        main = int(pidfile.read_text().split()[0])
        out = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True).stdout
        return [main, *(int(p) for p in out.split())]

    def signal(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self) -> None:
        done = subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"],
            capture_output=True,
            text=True,
            check=False,
            **_as_postgres(),
        )
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"faults: pg_ctl stop: {done.returncode} {done.stdout} {done.stderr}", file=sys.stderr)
                raise

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
        ]
        cmd += ["--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Service:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "bench.loadgen", "serve", "--port", str(self.port)]
        with self.log.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                cmd, env={**os.environ, **self.env}, stdout=subprocess.DEVNULL, stderr=log
            )
        wait_ready(f"{self.base}/readyz", [self.proc], timeout=60)

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# --- load and bookkeeping ---------------------------------------------------------------------


@dataclass
class Sent:
    key: str
    token: str
    sku: str
    status: int | None = None  # None: no answer (connection broken / timed out)
    order_id: int | None = None


@dataclass
class Row:
    name: str
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    recovery_s: float | None = None
    slowest_s: float = 0.0
    violations: int = 0
    pushes: str = "-"  # lost / duplicated pushes (the drainer experiment)
    note: str = ""


class Load:
    def __init__(self, seeded: dict[str, Any]) -> None:
        self.tokens: list[str] = seeded["tokens"]
        self.skus: list[str] = seeded["skus"]
        self.orders: list[Sent] = []
        self.replays: list[tuple[Sent, Sent]] = []
        self.replayed_upto = 0  # orders before this index were replayed already

    async def burst(self, bases: list[str], seconds: float, fault: Any, heal: Any, row: Row) -> None:
        """Orders and stock reads: `fault()` after a third of `seconds`, `heal()` a third
        later, then load for another third once the repair is done."""
        loop = asyncio.get_running_loop()
        stop_at: float | None = None
        healed_at: list[float] = []
        first_ok_after: list[float] = []
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def worker(w: int) -> None:
                i = 0
                while stop_at is None or loop.time() < stop_at:
                    i += 1
                    base = bases[(w + i) % len(bases)]
                    t0 = loop.time()
                    status = await (self._order(http, base, w, i) if i % 3 else self._stock(http, base, w))
                    row.slowest_s = max(row.slowest_s, loop.time() - t0)
                    row.requests += 1
                    row.statuses[str(status) if status is not None else "no answer"] += 1
                    ok = status is not None and status < 300
                    if healed_at and ok and not first_ok_after:
                        first_ok_after.append(loop.time())
                    if not ok:
                        await asyncio.sleep(0.05)

            async def script() -> None:
                nonlocal stop_at
                await asyncio.sleep(seconds / 3)
                await asyncio.to_thread(fault)
                await asyncio.sleep(seconds / 3)
                started = loop.time()
                await asyncio.to_thread(heal)
                healed_at.append(started)
                stop_at = loop.time() + seconds / 3  # load goes on a while after the repair

            await asyncio.gather(script(), *(worker(w) for w in range(CONCURRENCY)))
        if healed_at:
            row.recovery_s = (first_ok_after[0] - healed_at[0]) if first_ok_after else None

    async def _order(self, http: aiohttp.ClientSession, base: str, w: int, i: int) -> int | None:
        token = self.tokens[w % len(self.tokens)]
        sent = Sent(key=f"f-{uuid.uuid4().hex}", token=token, sku=self.skus[(w * 7 + i) % len(self.skus)])
        self.orders.append(sent)
        await self._post(http, base, sent)
        return sent.status

    async def _post(self, http: aiohttp.ClientSession, base: str, sent: Sent) -> None:
        headers = {"Authorization": f"Bearer {sent.token}", "Idempotency-Key": sent.key}
        body = {"lines": [{"sku": sent.sku, "qty": 1}]}
        try:
            async with http.post(f"{base}/api/v1/orders", json=body, headers=headers) as resp:
                sent.status = resp.status
                if resp.status == 201:
                    sent.order_id = int((await resp.json())["id"])
        except (aiohttp.ClientError, TimeoutError, OSError):
            sent.status = None

    async def _stock(self, http: aiohttp.ClientSession, base: str, w: int) -> int | None:
        headers = {"Authorization": f"Bearer {self.tokens[w % len(self.tokens)]}"}
        try:
            async with http.get(f"{base}/api/v1/stock", headers=headers) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def replay(self, base: str) -> int:
        """Re-send every order that got no answer or a 5xx, with its own key (as a client
        would); a key that had been committed must answer the same order."""
        fresh, self.replayed_upto = self.orders[self.replayed_upto :], len(self.orders)
        lost = [s for s in fresh if s.status is None or s.status >= 500]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for s in lost:
                again = Sent(key=s.key, token=s.token, sku=s.sku)
                await self._post(http, base, again)
                self.replays.append((s, again))
        return len(lost)


# --- invariants --------------------------------------------------------------------------------


async def check_invariants(db_url: str, load: Load) -> list[str]:
    from core.db import init_db
    from handlers.finance import credit_exposure
    from handlers.stock import verify_ledger
    from models.base import PaymentTerms
    from models.distributor import Distributor
    from models.order import IdempotencyRecord, Order
    from models.stock import Stock

    problems: list[str] = []
    ctx = await init_db(db_url)
    try:
        for st in await Stock.all():
            if st.reserved < 0 or st.on_hand < 0 or st.reserved > st.on_hand:
                problems.append(f"stock {st.id}: on_hand {st.on_hand}, reserved {st.reserved}")
        problems += [f"ledger drift: {d}" for d in await verify_ledger()]
        for d in await Distributor.exclude(payment_terms=PaymentTerms.PREPAY):
            exposure = await credit_exposure(d.id)
            if exposure > d.credit_limit:
                problems.append(f"distributor {d.id}: exposure {exposure} > credit limit {d.credit_limit}")
        orders = await Order.all().count()
        keyed = await IdempotencyRecord.filter(state="done").count()
        if orders != keyed:
            problems.append(f"{orders} orders but {keyed} finished Idempotency-Keys")
        ids = set(await Order.all().values_list("id", flat=True))
        answered = [s for s in load.orders if s.order_id is not None]
        problems += [
            f"201 for key {s.key} names order {s.order_id}, not in the database"
            for s in answered
            if s.order_id not in ids
        ]
        for first, again in load.replays:
            if again.status not in (201, 409, 429):
                problems.append(f"replay of {first.key}: {again.status}")
            if first.order_id is not None and again.order_id != first.order_id:
                problems.append(
                    f"replay of {first.key} answered order {again.order_id}, first {first.order_id}"
                )
        per_key = Counter(s.key for s in load.orders)
        if any(n > 1 for n in per_key.values()):
            problems.append("the load generator reused a key")
    finally:
        await ctx.close_connections()
    return problems


# --- the experiments ----------------------------------------------------------------------------


CREDIT_LIMIT = "300"  # distributor 1 (the first workers' orders of 10) runs into it mid-run


async def tighten_credit(db_url: str) -> None:
    from decimal import Decimal

    from core.db import init_db
    from models.distributor import Distributor

    ctx = await init_db(db_url)
    try:
        await Distributor.filter(id=1).update(credit_limit=Decimal(CREDIT_LIMIT))
    finally:
        await ctx.close_connections()


class Checker:
    """After each experiment: replay what got no answer, check every invariant, count the
    problems not seen before (and new 500s in the service log) against that experiment."""

    def __init__(self, db_url: str, load: Load, log: Path) -> None:
        self.db_url, self.load, self.log = db_url, load, log
        self.seen: set[str] = set()
        self.problems: list[str] = []

    async def after(self, row: Row, base: str) -> None:
        replayed = await self.load.replay(base)
        found = await check_invariants(self.db_url, self.load) + _log_problems(self.log)
        new = [p for p in found if p not in self.seen]
        self.seen.update(new)
        self.problems += [f"{row.name}: {p}" for p in new]
        row.violations += len(new)
        if replayed:
            row.note = (row.note + "; " if row.note else "") + f"{replayed} replayed"
        print(f"  {row.name}: {dict(row.statuses)} violations {row.violations}", flush=True)


async def run(root: Path) -> int:
    from bench.order_admission import seed

    pg, redis = Postgres(root), Redis()
    pg.init()
    pg.start()
    redis.start()
    services: list[Service] = []
    rows: list[Row] = []
    try:
        import asyncpg

        conn = await asyncpg.connect(pg.url("postgres").replace("postgres://", "postgresql://", 1))
        await conn.execute('CREATE DATABASE "faults"')
        await conn.close()
        db_url = pg.url("faults")
        seeded = await seed(db_url + "?maxsize=10", SKUS)
        await tighten_credit(db_url)
        env = {
            "QUDAO_DATABASE__URL": db_url + "?maxsize=10",
            "QUDAO_KV__URL": redis.url,
            "QUDAO_KV__NAMESPACE": "faults",
            "QUDAO_DATABASE__STATEMENT_TIMEOUT_S": "1",
            "QUDAO_DATABASE__CONNECT_TIMEOUT_S": "2",
            "QUDAO_DATABASE__PROBE_TIMEOUT_S": "1",
            "QUDAO_LIMITS__ORDERS_PER_USER_PER_MIN": "100000",
            "QUDAO_LOGGING__LEVEL": "ERROR",
            "QUDAO_SCHEDULER__ENABLED": "false",
        }
        load = Load(seeded)
        svc = Service(env, root / "service.log")
        svc.start()
        services.append(svc)
        checker = Checker(db_url, load, root / "service.log")
        bases = [svc.base]

        async def experiment(name: str, fault: Any, heal: Any, two: bool = False) -> None:
            row = Row(name)
            await load.burst(bases if not two else [bases[0], services[1].base], BURST_S, fault, heal, row)
            rows.append(row)
            await checker.after(row, bases[0])

        def kill() -> None:
            svc.kill9()

        def back() -> None:
            svc.port = free_port()  # the old socket may linger for a moment
            svc.start()
            bases[0] = svc.base  # requests to the dead port fail until it is back

        await experiment("baseline", lambda: None, lambda: None)
        await experiment("service kill -9 + restart", kill, back)
        await experiment("postgres stop + start", pg.stop, pg.start)
        await experiment(
            "postgres freeze 3 s", lambda: pg.signal(signal.SIGSTOP), lambda: pg.signal(signal.SIGCONT)
        )
        await experiment("redis kill + start empty", redis.kill, redis.start)
        await experiment(
            "redis freeze 3 s", lambda: redis.signal(signal.SIGSTOP), lambda: redis.signal(signal.SIGCONT)
        )
        second = Service(env, root / "service.log")
        second.start()
        services.append(second)
        await experiment("two instances, one database", lambda: None, lambda: None, two=True)

        from bench import faults_push

        push = await faults_push.experiment(pg.url("postgres"), pg.url("push") + "?maxsize=10")
        row = Row("drainer kill -9 mid-push", requests=push["requests"], recovery_s=push["recovery_s"])
        row.statuses.update({k: v for k, v in push["statuses"].items() if k != "push sent"})
        row.violations = len(push["problems"])
        row.pushes = f"{push['lost']} / {push['dup']}"
        checker.problems += [f"{row.name}: {p}" for p in push["problems"]]
        rows.append(row)
        print(f"  {row.name}: {dict(row.statuses)} lost/dup {row.pushes}", flush=True)
        problems = checker.problems
    finally:
        for s in services:
            s.stop()
        redis.kill()
        pg.signal(signal.SIGCONT)
        pg.stop()
    sqlite_rows, sqlite_problems = _sqlite_phase(root)
    rows += sqlite_rows
    problems += sqlite_problems
    _print(rows, problems)
    return 1 if problems else 0


def _sqlite_phase(root: Path) -> tuple[list[Row], list[str]]:
    """The SQLite experiments, in their own process (tortoise caches SQL per connection name:
    one process cannot speak both dialects)."""
    from bench import faults_disk

    why = faults_disk.available()
    if why is not None:
        return [Row("sqlite read-only / full disk", note=f"skipped: {why}")], []
    out = root / "sqlite.json"
    cmd = ["unshare", "-m", "--propagation", "private"]
    cmd += [sys.executable, "-m", "bench.faults", "sqlite", str(root), str(out)]
    done = subprocess.run(cmd, check=False)
    if not out.exists():
        return [Row("sqlite", note="phase crashed")], [f"sqlite phase: exit {done.returncode}, no result"]
    import json

    data = json.loads(out.read_text())
    rows = []
    for r in data["rows"]:
        row = Row(r["name"], requests=r["requests"], recovery_s=r["recovery_s"], slowest_s=r["slowest_s"])
        row.statuses.update(r["statuses"])
        row.violations, row.note = r["violations"], r["note"]
        rows.append(row)
    return rows, data["problems"]


async def run_sqlite(root: Path) -> tuple[list[Row], list[str]]:
    from bench import faults_disk
    from bench.order_admission import seed

    db_file = root / "sqlite" / "qudao.sqlite3"
    faults_disk.mount_tmpfs(db_file.parent)  # this process runs in its own mount namespace
    db_url = f"sqlite://{db_file}"
    seeded = await seed(db_url, SKUS)
    await tighten_credit(db_url)
    env = {
        "QUDAO_KV__URL": "memory://",
        "QUDAO_DATABASE__PROBE_TIMEOUT_S": "1",
        "QUDAO_DATABASE__MIN_FREE_MB": "2",
        "QUDAO_LIMITS__ORDERS_PER_USER_PER_MIN": "100000",
        "QUDAO_LOGGING__LEVEL": "ERROR",
        "QUDAO_SCHEDULER__ENABLED": "false",
    }
    log = root / "sqlite-service.log"
    svc = faults_disk.SqliteService(db_file, env, log)
    svc.start()
    load = Load(seeded)
    checker = Checker(db_url, load, log)
    rows: list[Row] = []
    try:

        async def experiment(name: str, fault: Any, heal: Any, extra: Any = None) -> None:
            row = Row(name)
            notes: list[str] = []

            def faulted() -> None:
                fault()
                took = faults_disk.wait_ready_status(svc.base, 503)
                notes.append("readyz 503 " + (f"after {took:.1f}s" if took is not None else "NEVER"))
                if took is None:
                    row.violations += 1
                    checker.problems.append(f"{name}: /readyz never said 503")
                if extra is not None:
                    notes.append(extra(row))

            def healed() -> None:
                heal()
                took = faults_disk.wait_ready_status(svc.base, 200, within=15)
                notes.append("readyz 200 " + (f"after {took:.1f}s" if took is not None else "NEVER"))
                if took is None:
                    row.violations += 1
                    checker.problems.append(f"{name}: /readyz not 200 after the repair")

            await load.burst([svc.base], BURST_S, faulted, healed, row)
            if row.slowest_s > 10:
                row.violations += 1
                checker.problems.append(f"{name}: a request took {row.slowest_s:.1f}s (hang)")
            row.note = ", ".join(notes)
            rows.append(row)
            await checker.after(row, svc.base)

        def restart_check(row: Row) -> str:
            code, took, line = svc.restart_refused()
            if code != 2 or took > 20:
                row.violations += 1
                checker.problems.append(f"serve on a read-only folder: exit {code} after {took:.1f}s: {line}")
            return f"serve refused: exit {code} in {took:.1f}s"

        await experiment("sqlite read-only mount", svc.read_only, svc.writable, restart_check)
        await experiment("sqlite disk full", svc.fill, svc.unfill)
    finally:
        svc.stop()
    return rows, checker.problems


def _sqlite_main(root: str, out: str) -> int:
    import dataclasses
    import json

    rows, problems = asyncio.run(run_sqlite(Path(root)))
    plain = [{f.name: getattr(r, f.name) for f in dataclasses.fields(r)} for r in rows]
    data = {"rows": [r | {"statuses": dict(r["statuses"])} for r in plain], "problems": problems}
    Path(out).write_text(json.dumps(data, ensure_ascii=False, default=str))
    return 0


def _log_problems(path: Path) -> list[str]:
    """A 500 is a bug, not an outage: every `unhandled_error` in the service log is one."""
    import json

    out = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "unhandled_error":
                exc = str(event.get("exception", "")).strip().splitlines()
                out.append(f"500 on {event.get('path')}: {exc[-1] if exc else '?'}")
    return out


def _print(rows: list[Row], problems: list[str]) -> None:
    """experiment, requests, errors by status (and transport errors), slowest answer,
    recovery (repair -> first success), invariant violations, lost / duplicated pushes."""
    print()
    cols = ["experiment".ljust(30), "requests", "errors by status".ljust(40), "slowest", "recovery"]
    head = "| " + " | ".join([*cols, "violations", "lost / dup pushes"]) + " |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        rec = "-" if r.recovery_s is None else f"{r.recovery_s:.1f}s"
        errors = ", ".join(
            f"{k}: {v}" for k, v in sorted(r.statuses.items()) if not (k.isdigit() and int(k) < 300)
        )
        print(
            f"| {r.name:30} | {r.requests:>8} | {errors or '-':40} | {r.slowest_s:>6.1f}s | {rec:>8} "
            f"| {r.violations:>10} | {r.pushes:>17} |"
        )
    for r in rows:
        if r.note:
            print(f"  {r.name}: {r.note}")
    print(f"invariant violations: {len(problems)}")
    for p in problems[:20]:
        print(f"  - {p}")


def main(argv: list[str] | None = None) -> int:
    if argv and argv[0] == "sqlite":  # the SQLite phase's own process (see _sqlite_phase)
        return _sqlite_main(argv[1], argv[2])
    with _tempdir() as root:
        return asyncio.run(run(root))


@contextlib.contextmanager
def _tempdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="qudao-faults-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
