"""Issue 14, item 8: a Content-Security-Policy on every page (django-csp), and no template
that needs it loosened: no inline script without the request's nonce, no inline event
handler, no style attribute or <style> element. (Chromium runs the pages under the policy in
tests/browser/test_csp_in_browser.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from django.urls import reverse

from portal.models import Role
from tests import factories as f
from tests.support.signin import force_login_verified

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def test_every_page_carries_a_strict_policy(client, db):
    policy = _policy(client.get(reverse("login")))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no nonce: the page has no inline script
    assert policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'self'"
    # The VM console's websocket goes to the console proxy (BDR_CONSOLE_PROXY_URL).
    assert policy["connect-src"] == "'self' ws://127.0.0.1:*"


def test_connect_src_follows_the_console_proxy_setting(client, db, settings):
    settings.BDR_CONSOLE_PROXY_URL = "wss://console.example.com:8443/"
    assert _policy(client.get(reverse("login")))["connect-src"] == (
        "'self' wss://console.example.com:*"
    )
    settings.BDR_CONSOLE_PROXY_URL = "/console/"  # this host: 'self' covers it
    assert _policy(client.get(reverse("login")))["connect-src"] == "'self'"


def test_the_vm_page_nonce_is_the_one_its_console_script_carries(client, db, settings):
    settings.BDR_RPC_RETRY_DELAYS = []  # its appliance is nowhere: give up at once
    force_login_verified(client, f.UserFactory(role=Role.TECHNICIAN))
    vm = f.VirtualMachineFactory(state="running", server__appliance__ssh_host="")
    response = client.get(reverse("vm_detail", args=[vm.pk]))
    nonce = re.fullmatch(r"'self' 'nonce-([^']+)'", _policy(response)["script-src"])[1]
    assert f'<script type="module" nonce="{nonce}">' in response.content.decode()


def test_no_template_needs_inline_script_or_style():
    offending = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", text)
        offending += [f"{template.name}: inline script" for s in scripts if "nonce=" not in s]
        for pattern in (r"\son[a-z]+=", r"\sstyle=", r"<style", r"hx-on"):
            if re.search(pattern, text):
                offending.append(f"{template.name}: {pattern}")
    assert offending == []
