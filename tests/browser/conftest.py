import os

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Flags that keep Chromium from reaching for the network at start (this machine has none).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    # Sync Playwright runs an event loop in this thread; Django's ORM would refuse to run here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def sign_in(page, live_server, username, password):
    """Sign in through the pages as a person would: the password, then the second factor when
    the portal asks for it (enrolling at first sign-in: the secret is read off the page)."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if "/accounts/two-factor/setup/" in page.url:
        enrol_authenticator(page)
    elif "/accounts/two-factor/" in page.url:
        from django_otp.plugins.otp_totp.models import TOTPDevice

        # The key the user's authenticator app holds.
        device = TOTPDevice.objects.get(user__username=username, confirmed=True)
        enter_code(page, totp_code(device.bin_key, after_step=device.last_t))


def totp_code(key: bytes, after_step: int = -1) -> str:
    """The 6-digit code an authenticator app shows now; a code is good once, so if the one for
    this 30 s step was used already (``after_step``), the next step's (accepted: tolerance 1)."""
    from django_otp.oath import TOTP

    totp = TOTP(key)
    if totp.t() <= after_step:
        totp.time = (after_step + 1) * totp.step
    return f"{totp.token():06d}"


def enter_code(page, code: str) -> None:
    page.fill("input[name=code]", code)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def enrol_authenticator(page) -> tuple[bytes, list[str]]:
    """On the set-up page: read the secret, confirm a code, note the recovery codes, go on.
    Returns the key and the recovery codes."""
    import base64

    secret = page.inner_text("#totp-secret").strip()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    enter_code(page, totp_code(key))
    codes = [c.strip() for c in page.locator(".recovery-codes code").all_inner_texts()]
    page.click("text=Continue")
    page.wait_for_load_state()
    return key, codes
