"""The per-distributor exposure balance (receivables + open orders' unshipped value) is kept in
the same transaction as every ledger/order change, the credit check reads it instead of SUMs
over history, and `qudao finance verify` recomputes it from the ledger (exit 1 on drift)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from core.errors import CreditLimitExceeded, DomainError
from core.money import money
from handlers import ordering
from handlers.actor import SYSTEM
from handlers.finance import PaymentIn, credit_exposure, record_payment, verify_exposure
from models.distributor import Distributor
from tests.cli_run import run_cli
from tests.factories_orders import make_order, new_key, placer, shop


async def _stored(dist_id: int) -> Decimal:
    [value] = await Distributor.filter(id=dist_id).values_list("exposure", flat=True)
    return money(value)


async def test_exposure_when_orders_ship_pay_and_cancel_follows_the_ledger(db) -> None:
    s = await shop(price="10.00")
    d = s["distributor"]
    a = await make_order(d, product=s["product"], qty=3)  # 30 open
    b = await make_order(d, product=s["product"], qty=2, status="shipped")  # 20 receivable
    assert await _stored(d.id) == money("50") == await credit_exposure(d.id)
    await ordering.cancel_order(SYSTEM, a.id)
    await record_payment(
        SYSTEM, PaymentIn(distributor_id=d.id, amount="5", paid_at=datetime.now(UTC).isoformat(), ref="p1")
    )
    assert await _stored(d.id) == money("15")
    assert await verify_exposure() == []
    assert b.status == "shipped"


async def test_credit_check_when_balance_says_full_refuses(db) -> None:
    s = await shop(price="10.00", credit_limit="100")
    d = s["distributor"]
    await Distributor.filter(id=d.id).update(exposure=money("95"))  # what the check reads
    try:
        await make_order(d, product=s["product"], qty=1)
    except CreditLimitExceeded:
        pass
    else:
        raise AssertionError("the stored exposure was not used by the credit check")
    assert [x.distributor_id for x in await verify_exposure()] == [d.id]


async def test_exposure_when_many_concurrent_changes_equals_recomputation(db) -> None:
    s = await shop(on_hand=1000, price="10.00", credit_limit="300")
    d = s["distributor"]
    actor = await placer(d)

    async def place(qty: int) -> None:
        body = {"distributor_id": d.id, "lines": [{"sku": s["product"].sku, "qty": qty}]}
        try:
            out = await ordering.place_order(actor, idempotency_key=new_key(), body=body)
        except DomainError:
            return
        if qty % 3 == 0:
            await ordering.cancel_order(SYSTEM, out.id)
        elif qty % 3 == 1:
            await ordering.approve_order(SYSTEM, out.id)
            await ordering.ship_order(SYSTEM, out.id, {"lines": [{"sku": s["product"].sku, "qty": 1}]})

    async def pay(i: int) -> None:
        data = PaymentIn(distributor_id=d.id, amount="7", paid_at=datetime.now(UTC).isoformat(), ref=f"c{i}")
        await record_payment(SYSTEM, data)

    jobs = [place(1 + i % 5) for i in range(24)] + [pay(i) for i in range(8)]
    await asyncio.gather(*jobs)
    assert await verify_exposure() == []


async def test_cli_finance_verify_exit_codes(client, config) -> None:  # type: ignore[no-untyped-def]
    s = await shop(price="10.00")
    await make_order(s["distributor"], product=s["product"], qty=2)

    def run():  # type: ignore[no-untyped-def]
        return run_cli(config, "finance", "verify")

    ok = run()
    assert ok.returncode == 0 and "match" in ok.stdout, ok.stdout + ok.stderr
    await Distributor.filter(id=s["distributor"].id).update(exposure=money("1"))
    bad = run()
    assert bad.returncode == 1 and f"DRIFT distributor={s['distributor'].id}" in bad.stdout, bad.stdout
