"""The console in a real browser: Debian's Chromium driven by Playwright's async API.

Log in as a demo manager, check the 工作台 chart rendered (its ready flag; animations off
through prefers-reduced-motion), approve an order, arbitrate a lead, and screenshot every
main page into `QUDAO_SCREENSHOTS` (default build/console-screenshots) for review. No page
may log a browser error (a CSP violation included).

Skips without Chromium (`apt-get install chromium fonts-noto-cjk`; `make test` installs them
as root) unless CI=true or QUDAO_TEST_BACKEND=server, where a skip is a failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from handlers import leads
from handlers.auth import build_actor
from handlers.demo import DEMO_PASSWORD, seed_demo
from handlers.leads import LeadIn
from models.base import LeadStatus, OrderStatus, UserRole
from models.lead import Lead
from models.order import Order
from models.user import User
from tests.conftest import STRICT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("QUDAO_SCREENSHOTS", ROOT / "build" / "console-screenshots"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None and not STRICT, reason="no chromium (apt-get install chromium)"),
]


async def _arbitration_case() -> int:
    """A protected lead of 华东's rep and a 华东 distributor's conflicting one, pending."""
    rep = await User.get(username="rep_zhang")
    buyer = await User.filter(role=UserRole.DISTRIBUTOR, distributor__region="华东").first()
    assert buyer is not None
    name = "苏州工业园区星河建设有限公司"
    await leads.register_lead(await build_actor(rep), LeadIn(customer_name=name, phone="13812345678"))
    pending = await leads.register_lead(
        await build_actor(buyer), LeadIn(customer_name=name, phone="13987654321", arbitration=True)
    )
    return pending.id


@pytest.fixture
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


async def test_manager_week_in_the_browser(client, shots: Path) -> None:
    from playwright.async_api import async_playwright

    await seed_demo()
    lead_id = await _arbitration_case()
    base = str(client.make_url("/console/"))
    errors: list[str] = []

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--lang=zh-CN"])
        context = await browser.new_context(
            locale="zh-CN", reduced_motion="reduce", viewport={"width": 1366, "height": 900}
        )
        page = await context.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        await page.goto(base)
        assert "/console/login" in page.url
        await page.screenshot(path=shots / "01-login.png", full_page=True)
        await page.fill("input[name=username]", "mgr_east")
        await page.fill("input[name=password]", DEMO_PASSWORD)
        await page.click("button[type=submit]")

        # 工作台: the chart sets data-ready when ECharts has finished drawing
        await page.wait_for_selector("html[data-chart-ready='1']", timeout=15_000)
        for chart in ("#sales-chart", "#top-chart", "#aging-chart"):
            assert await page.locator(f"{chart}[data-ready='1'] canvas").count() == 1
        assert int(await page.inner_text("#todo-orders")) >= 1
        await page.screenshot(path=shots / "02-workbench.png", full_page=True)

        await page.goto(base + "orders?status=pending_review")
        await page.screenshot(path=shots / "03-orders.png", full_page=True)
        number = (await page.inner_text("#order-table tbody tr:first-child td:first-child")).strip()
        await page.click("#order-table tbody tr:first-child a")
        await page.wait_for_selector("#approve-order")
        await page.screenshot(path=shots / "04-order-detail.png", full_page=True)
        await page.click("#approve-order")
        await page.wait_for_selector("text=订单已审核通过")
        assert (await page.inner_text("#order-status")).strip() == "已审核"
        await page.screenshot(path=shots / "05-order-approved.png", full_page=True)
        assert (await Order.get(number=number)).status == OrderStatus.APPROVED

        await page.goto(base + "leads")
        card = page.locator(f"#lead-{lead_id}")
        assert "已受保护的报备" in await card.inner_text()
        await page.screenshot(path=shots / "06-leads.png", full_page=True)
        await card.locator("button.primary").click()
        await page.wait_for_selector("text=已批准")
        await page.screenshot(path=shots / "07-lead-approved.png", full_page=True)
        assert (await Lead.get(id=lead_id)).status == LeadStatus.PROTECTED

        for n, path in enumerate(("returns?status=", "statements", "alerts"), start=8):
            await page.goto(base + path)
            await page.wait_for_selector("#export")
            await page.screenshot(path=shots / f"{n:02d}-{path.split('?')[0]}.png", full_page=True)

        await page.click("text=退出登录")
        await page.wait_for_url("**/console/login")
        await browser.close()

    assert not errors, errors
