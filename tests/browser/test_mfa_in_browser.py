"""A technician's first sign-in in Chromium: password, set up the authenticator from the secret
on the page, recovery codes shown; then a second sign-in that asks for a code."""

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.models import Role
from tests.browser.conftest import enrol_authenticator, enter_code, totp_code
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _password(page, live_server, username):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_technician_enrols_totp_at_first_sign_in_and_signs_in_again_with_a_code(page, live_server):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    _password(page, live_server, "tina")
    assert "/accounts/two-factor/setup/" in page.url
    assert page.locator(".qr svg").count() == 1
    # No page is reachable before the code is confirmed.
    page.goto(f"{live_server.url}/appliances/")
    assert "/accounts/two-factor/setup/" in page.url

    key, codes = enrol_authenticator(page)
    assert len(codes) == 10
    page.click("nav >> text=Appliances")
    assert page.url.endswith("/appliances/")

    page.click("button:has-text('Sign out')")
    _password(page, live_server, "tina")
    assert "/accounts/two-factor/" in page.url and "setup" not in page.url
    enter_code(page, "000000" if totp_code(key) != "000000" else "111111")
    assert page.locator("text=That code is not right").count() == 1
    device = TOTPDevice.objects.get(user__username="tina", confirmed=True)
    # django-otp throttles after a wrong code: wait out its one-second delay.
    page.wait_for_timeout(1100)
    enter_code(page, totp_code(key, after_step=device.last_t))
    page.click("nav >> text=Jobs")
    assert page.url.endswith("/appliances/jobs/") or "/jobs/" in page.url
