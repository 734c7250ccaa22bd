"""A customer user, in Chromium, in demo mode: restore a file from yesterday's backup."""

import time

import pytest
from django.core.management import call_command

from tests.browser.conftest import sign_in


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_customer_user_restores_a_file_from_yesterdays_point(page, live_server, tmp_path):
    call_command("demo", store_dir=str(tmp_path / "demo-store"))
    started = time.monotonic()
    sign_in(page, live_server, "acme-user", "demo-pass-2026")
    page.click("nav >> text=Restore files")
    page.click("text=files01")
    # Yesterday's point is the daily one; its button says the date in plain words.
    row = page.locator("tr", has_text="Daily")
    row.locator("a:has-text('Restore a file from')").click()
    page.wait_for_selector("h1:has-text('Restore a file from')")
    page.click("text=Users")
    page.click("text=anna")
    page.click("text=Documents")
    with page.expect_download() as download_info:
        page.click("text=Budget 2026.xlsx")
    download = download_info.value
    target = tmp_path / "Budget 2026.xlsx"
    download.save_as(target)
    assert download.suggested_filename == "Budget 2026.xlsx"
    assert target.read_text() == "budget: rent 1200, salaries 9000\n"  # yesterday's version
    assert time.monotonic() - started < 60
    page.screenshot(path=str(tmp_path / "restore.png"), full_page=True)
