"""One KV contract, run against MemoryKV always and RedisKV when Redis is reachable.

Redis: `QUDAO_TEST_REDIS` (default redis://127.0.0.1:6379/0), a fresh uuid namespace per test,
flushed at teardown. With `QUDAO_TEST_BACKEND=server` an unreachable Redis fails instead of
skipping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from core.errors import ConfigError
from core.kv import KV, LockNotAcquired, RateResult, open_kv

REDIS_URL = os.environ.get("QUDAO_TEST_REDIS", "redis://127.0.0.1:6379/0")

KVFactory = Callable[[], Awaitable[KV]]


@pytest.fixture(params=["memory", "redis"])
async def kv_factory(request: pytest.FixtureRequest) -> AsyncIterator[KVFactory]:
    """Opens stores on the parametrized backend, each in its own namespace; cleans them up."""
    opened: list[KV] = []

    async def make() -> KV:
        if request.param == "memory":
            kv = open_kv("memory://", namespace=f"test-{uuid.uuid4().hex}")
        else:
            kv = open_kv(REDIS_URL, namespace=f"test-{uuid.uuid4().hex}")
            if not await kv.ping():
                await kv.close()
                message = f"redis not reachable at {REDIS_URL}"
                if os.environ.get("QUDAO_TEST_BACKEND") == "server":
                    pytest.fail(message)
                pytest.skip(message)
        opened.append(kv)
        return kv

    yield make
    for kv in opened:
        await kv.flush_namespace()
        await kv.close()


@pytest.fixture
async def kv(kv_factory: KVFactory) -> KV:
    return await kv_factory()


# --- get / set / ttl / delete -----------------------------------------------------------


async def test_get_set_when_str_or_bytes_returns_bytes(kv: KV) -> None:
    assert await kv.get("k") is None
    assert await kv.set("k", "值") is True
    assert await kv.get("k") == "值".encode()
    assert await kv.set("b", b"\x00\xff") is True
    assert await kv.get("b") == b"\x00\xff"


async def test_set_with_ttl_expires(kv: KV) -> None:
    await kv.set("k", "v", ttl=0.2)
    remaining = await kv.ttl("k")
    assert remaining is not None and 0 < remaining <= 0.2
    await asyncio.sleep(0.3)
    assert await kv.get("k") is None
    assert await kv.ttl("k") is None


async def test_ttl_when_missing_or_persistent_is_none(kv: KV) -> None:
    assert await kv.ttl("missing") is None
    await kv.set("k", "v")
    assert await kv.ttl("k") is None


async def test_set_without_ttl_clears_previous_ttl(kv: KV) -> None:
    await kv.set("k", "v1", ttl=0.2)
    await kv.set("k", "v2")
    assert await kv.ttl("k") is None
    await asyncio.sleep(0.3)
    assert await kv.get("k") == b"v2"


async def test_set_nx_only_writes_when_absent(kv: KV) -> None:
    assert await kv.set("k", "first", nx=True) is True
    assert await kv.set("k", "second", nx=True) is False
    assert await kv.get("k") == b"first"
    await kv.set("t", "old", ttl=0.2, nx=True)
    await asyncio.sleep(0.3)
    assert await kv.set("t", "new", nx=True) is True  # an expired key counts as absent
    assert await kv.get("t") == b"new"


async def test_set_nx_concurrent_exactly_one_wins(kv: KV) -> None:
    results = await asyncio.gather(*(kv.set("once", str(i), nx=True) for i in range(50)))
    assert results.count(True) == 1


async def test_delete_returns_count_of_existing_keys(kv: KV) -> None:
    await kv.set("a", "1")
    await kv.set("b", "2")
    assert await kv.delete("a", "b", "missing") == 2
    assert await kv.get("a") is None
    assert await kv.delete() == 0


async def test_ttl_rejects_non_positive(kv: KV) -> None:
    with pytest.raises(ValueError):
        await kv.set("k", "v", ttl=0)


# --- incr -------------------------------------------------------------------------------


async def test_incr_when_concurrent_is_atomic(kv: KV) -> None:
    results = await asyncio.gather(*(kv.incr("n") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await kv.get("n") == b"200"


async def test_incr_with_ttl_sets_expiry_only_on_create(kv: KV) -> None:
    assert await kv.incr("n", 5, ttl=0.2) == 5
    assert await kv.incr("n", -2, ttl=60) == 3
    remaining = await kv.ttl("n")
    assert remaining is not None and remaining <= 0.2  # the second ttl did not extend it
    await asyncio.sleep(0.3)
    assert await kv.get("n") is None
    assert await kv.incr("n") == 1
    assert await kv.ttl("n") is None


async def test_incr_concurrent_with_ttl_is_atomic(kv: KV) -> None:
    results = await asyncio.gather(*(kv.incr("n", ttl=5) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    remaining = await kv.ttl("n")
    assert remaining is not None and 0 < remaining <= 5


async def test_incr_when_not_integer_raises_value_error(kv: KV) -> None:
    await kv.set("k", "abc")
    with pytest.raises(ValueError):
        await kv.incr("k")


# --- locks ------------------------------------------------------------------------------


async def test_lock_when_concurrent_has_no_interleaving(kv: KV) -> None:
    counter = 0
    inside = 0
    max_inside = 0

    async def worker() -> None:
        nonlocal counter, inside, max_inside
        async with kv.lock("critical", timeout=5):
            inside += 1
            max_inside = max(max_inside, inside)
            seen = counter
            await asyncio.sleep(0.002)  # yield inside the critical section
            counter = seen + 1
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(30)))
    assert counter == 30
    assert max_inside == 1
    assert await kv.try_lock("critical", timeout=1) is not None  # released at the end


async def test_lock_non_blocking_when_held_raises(kv: KV) -> None:
    async with kv.lock("l", timeout=5):
        with pytest.raises(LockNotAcquired):
            async with kv.lock("l", timeout=5, blocking=False):
                pass


async def test_lock_blocking_timeout_when_held_raises_after_waiting(kv: KV) -> None:
    loop = asyncio.get_running_loop()
    async with kv.lock("l", timeout=5):
        started = loop.time()
        with pytest.raises(LockNotAcquired):
            async with kv.lock("l", timeout=5, blocking_timeout=0.15):
                pass
        assert loop.time() - started >= 0.14


async def test_lock_blocking_waits_for_release(kv: KV) -> None:
    holder = await kv.try_lock("l", timeout=5)
    assert holder is not None

    async def release_soon() -> None:
        await asyncio.sleep(0.1)
        await holder.release()

    releaser = asyncio.create_task(release_soon())
    async with kv.lock("l", timeout=5, blocking_timeout=2):
        assert releaser.done()
    await releaser


async def test_lock_released_when_body_raises(kv: KV) -> None:
    with pytest.raises(RuntimeError):
        async with kv.lock("l", timeout=5):
            raise RuntimeError("boom")
    assert await kv.try_lock("l", timeout=1) is not None


async def test_lock_expires_after_timeout(kv: KV) -> None:
    first = await kv.try_lock("l", timeout=0.2)
    assert first is not None
    assert await kv.try_lock("l", timeout=0.2) is None
    await asyncio.sleep(0.3)
    second = await kv.try_lock("l", timeout=5)
    assert second is not None
    await second.release()


async def test_release_after_expiry_keeps_new_owners_lock(kv: KV) -> None:
    stale = await kv.try_lock("l", timeout=0.2)
    assert stale is not None
    await asyncio.sleep(0.3)
    owner = await kv.try_lock("l", timeout=5)
    assert owner is not None
    assert await stale.release() is False
    assert await kv.try_lock("l", timeout=5) is None  # still held by the new owner
    assert await owner.release() is True
    assert await owner.release() is False  # idempotent
    assert await kv.try_lock("l", timeout=5) is not None


async def test_lock_body_outliving_timeout_leaves_new_owner_alone(kv: KV) -> None:
    intruder = None
    async with kv.lock("l", timeout=0.2):
        await asyncio.sleep(0.3)
        intruder = await kv.try_lock("l", timeout=5)
        assert intruder is not None  # the lease ran out, so another instance got in
    assert await kv.try_lock("l", timeout=5) is None  # our exit did not delete its lock
    assert await intruder.release() is True


async def test_extend_renews_only_our_own_lease(kv: KV) -> None:
    handle = await kv.try_lock("l", timeout=0.3)
    assert handle is not None
    for _ in range(3):  # 0.6 s in all, twice the first lease
        await asyncio.sleep(0.2)
        assert await handle.extend(0.3) is True
    assert await kv.try_lock("l", timeout=5) is None  # still ours
    await asyncio.sleep(0.4)  # not renewed any more: it lapses
    other = await kv.try_lock("l", timeout=5)
    assert other is not None
    assert await handle.extend(5) is False  # someone else's now: untouched
    assert 4 < (await kv.ttl("lock:l") or 0) <= 5
    assert await other.release() is True
    assert await other.extend(5) is False  # released


async def test_try_lock_when_held_returns_none(kv: KV) -> None:
    handle = await kv.try_lock("job:low_stock", timeout=5)
    assert handle is not None
    assert await kv.try_lock("job:low_stock", timeout=5) is None
    assert await kv.try_lock("job:other", timeout=5) is not None
    await handle.release()
    assert await kv.try_lock("job:low_stock", timeout=5) is not None


async def test_try_lock_concurrent_exactly_one_wins(kv: KV) -> None:
    handles = await asyncio.gather(*(kv.try_lock("job", timeout=5) for _ in range(50)))
    assert sum(h is not None for h in handles) == 1


async def test_lock_does_not_collide_with_plain_key(kv: KV) -> None:
    await kv.set("l", "plain value")
    assert await kv.try_lock("l", timeout=5) is not None
    assert await kv.get("l") == b"plain value"


# --- rate limit -------------------------------------------------------------------------


async def test_rate_limit_burst_allows_exactly_limit(kv: KV) -> None:
    results = await asyncio.gather(*(kv.rate_limit("u1", limit=10, window=5) for _ in range(40)))
    assert all(isinstance(r, RateResult) for r in results)
    allowed = [r for r in results if r.allowed]
    denied = [r for r in results if not r.allowed]
    assert len(allowed) == 10
    assert sorted(r.remaining for r in allowed) == list(range(10))
    assert all(r.retry_after == 0 for r in allowed)
    assert all(r.remaining == 0 and 0 < r.retry_after <= 5 for r in denied)


async def test_rate_limit_when_window_passes_allows_again(kv: KV) -> None:
    assert (await kv.rate_limit("u", limit=2, window=0.3)).allowed
    assert (await kv.rate_limit("u", limit=2, window=0.3)).allowed
    denied = await kv.rate_limit("u", limit=2, window=0.3)
    assert not denied.allowed and 0 < denied.retry_after <= 0.3
    await asyncio.sleep(denied.retry_after + 0.05)
    again = await kv.rate_limit("u", limit=2, window=0.3)
    assert again.allowed and again.retry_after == 0.0


async def test_rate_limit_window_slides_not_fixed(kv: KV) -> None:
    # Calls at t=0 and t=0.25 with a 0.5 s window: at t=0.55 only the first has left the
    # window, so exactly one more is allowed (a fixed window would have reset both).
    assert (await kv.rate_limit("u", limit=2, window=0.5)).allowed
    await asyncio.sleep(0.25)
    assert (await kv.rate_limit("u", limit=2, window=0.5)).allowed
    await asyncio.sleep(0.3)
    assert (await kv.rate_limit("u", limit=2, window=0.5)).allowed
    late = await kv.rate_limit("u", limit=2, window=0.5)
    assert not late.allowed
    assert 0 < late.retry_after <= 0.25


async def test_rate_limit_denied_calls_do_not_consume_budget(kv: KV) -> None:
    for _ in range(2):
        assert (await kv.rate_limit("u", limit=2, window=0.4)).allowed
    await asyncio.sleep(0.2)
    for _ in range(20):  # hammering while throttled must not push the window forward
        assert not (await kv.rate_limit("u", limit=2, window=0.4)).allowed
    await asyncio.sleep(0.25)
    assert (await kv.rate_limit("u", limit=2, window=0.4)).allowed
    assert (await kv.rate_limit("u", limit=2, window=0.4)).allowed


async def test_rate_limit_keys_are_independent(kv: KV) -> None:
    assert (await kv.rate_limit("a", limit=1, window=5)).allowed
    assert not (await kv.rate_limit("a", limit=1, window=5)).allowed
    assert (await kv.rate_limit("b", limit=1, window=5)).allowed


async def test_rate_limit_rejects_bad_arguments(kv: KV) -> None:
    with pytest.raises(ValueError):
        await kv.rate_limit("a", limit=0, window=5)
    with pytest.raises(ValueError):
        await kv.rate_limit("a", limit=1, window=0)


# --- json, namespaces, health -----------------------------------------------------------


async def test_json_helpers_keep_chinese_text(kv: KV) -> None:
    obj = {"名称": "一级经销商", "region": "华东", "qty": 3, "tags": ["新", "VIP"]}
    assert await kv.set_json("d", obj) is True
    assert await kv.get_json("d") == obj
    assert "一级经销商".encode() in (await kv.get("d") or b"")  # ensure_ascii=False
    assert await kv.get_json("missing") is None
    assert await kv.set_json("d", {"x": 1}, nx=True) is False
    await kv.set_json("t", [1], ttl=0.2)
    await asyncio.sleep(0.3)
    assert await kv.get_json("t") is None


async def test_namespaces_are_isolated(kv_factory: KVFactory) -> None:
    a, b = await kv_factory(), await kv_factory()
    await a.set("k", "a")
    await b.set("k", "b")
    assert await a.try_lock("l", timeout=5) is not None
    assert await b.try_lock("l", timeout=5) is not None
    assert await a.flush_namespace() >= 2
    assert await a.get("k") is None
    assert await b.get("k") == b"b"


async def test_flush_namespace_removes_keys_locks_and_windows(kv: KV) -> None:
    await kv.set("k", "v")
    await kv.incr("n")
    await kv.try_lock("l", timeout=5)
    await kv.rate_limit("r", limit=1, window=5)
    assert await kv.flush_namespace() == 4
    assert await kv.get("k") is None
    assert await kv.try_lock("l", timeout=5) is not None
    assert (await kv.rate_limit("r", limit=1, window=5)).allowed


async def test_ping_when_open_is_true(kv: KV) -> None:
    assert await kv.ping() is True


# --- open_kv ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://user:s3cret@example.com", "postgres://x/y", "nonsense"])
def test_open_kv_unknown_scheme_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"kv\.url") as info:
        open_kv(url)
    assert "s3cret" not in str(info.value)


async def test_open_kv_redis_url_is_lazy_and_unreachable_ping_is_false() -> None:
    kv = open_kv("redis://127.0.0.1:1/0", namespace="unreachable")
    try:
        assert await kv.ping() is False
    finally:
        await kv.close()
