"""Two-factor sign-in through the real pages: who must enrol, codes right and wrong,
recovery codes used once, the Django admin behind the same requirement."""

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.models import AuditEvent, Role
from tests.factories import DEFAULT_PASSWORD, CustomerFactory, UserFactory
from tests.support.signin import authenticator_for

# Every test runs at this instant, so the codes are the ones for it, whatever the wall clock.
NOW = dt.datetime(2026, 3, 10, 9, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def code_for(key_hex_or_device, at: dt.datetime = NOW) -> str:
    device = key_hex_or_device
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = at.timestamp()
    return f"{totp.token():0{device.digits}d}"


def sign_in_with_password(client, username):
    response = client.post(
        reverse("login"), {"username": username, "password": DEFAULT_PASSWORD}, follow=False
    )
    assert response.status_code == 302, response.content[:500]
    return response


def test_technician_with_password_only_reaches_no_page_before_enrolling(client, db):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    sign_in_with_password(client, "tina")
    for url in ("/", reverse("appliance_list"), reverse("job_list"), "/admin/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("mfa_enrol")), url
    response = client.get("/api/appliances/")
    assert response.status_code == 403
    assert response.json() == {"detail": "Two-factor sign-in required."}


def test_msp_admin_with_password_only_is_kept_out_of_the_django_admin(client, db):
    admin = UserFactory(role=Role.MSP_ADMIN, username="boss", is_staff=True, is_superuser=True)
    device = authenticator_for(admin)
    sign_in_with_password(client, "boss")
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_verify"))
    response = client.get("/admin/portal/user/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_verify"))
    client.post(reverse("mfa_verify"), {"code": code_for(device)})
    assert client.get("/admin/").status_code == 200


def test_technician_enrols_at_first_sign_in_then_every_sign_in_asks_a_code(
    client, db, frozen_clock
):
    tina = UserFactory(role=Role.TECHNICIAN, username="tina")
    sign_in_with_password(client, "tina")
    page = client.get(reverse("mfa_enrol")).content.decode()
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert "<svg" in page and f"secret={secret}" in page
    device = TOTPDevice.objects.get(user=tina, confirmed=False)

    response = client.post(reverse("mfa_enrol"), {"code": code_for(device), "next": "/"})
    assert response.status_code == 302
    codes_page = client.get(response["Location"]).content.decode()
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", codes_page)
    assert len(codes) == 10
    assert client.get(reverse("appliance_list")).status_code == 200
    # The codes are shown once only.
    assert "<li><code>" not in client.get(reverse("mfa_recovery_codes")).content.decode()
    assert AuditEvent.objects.filter(action="auth.mfa_enrol", actor=tina).exists()

    client.post(reverse("logout"))
    frozen_clock.shift(dt.timedelta(minutes=5))
    sign_in_with_password(client, "tina")
    response = client.get(reverse("appliance_list"))
    assert response["Location"].startswith(reverse("mfa_verify"))
    device.refresh_from_db()
    assert device.confirmed
    response = client.post(
        reverse("mfa_verify"),
        {"code": code_for(device, NOW + dt.timedelta(minutes=5)), "next": "/appliances/"},
    )
    assert response.status_code == 302 and response["Location"] == "/appliances/"
    assert client.get(reverse("appliance_list")).status_code == 200


def test_enrolment_with_a_wrong_code_is_refused(client, db):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    sign_in_with_password(client, "tina")
    client.get(reverse("mfa_enrol"))
    device = TOTPDevice.objects.get(user__username="tina")
    wrong = code_for(device, NOW + dt.timedelta(minutes=10))
    response = client.post(reverse("mfa_enrol"), {"code": wrong})
    assert response.status_code == 200 and b"That code is not right" in response.content
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get("/").status_code == 302


def test_wrong_code_is_refused_and_audited(client, db):
    tina = UserFactory(role=Role.TECHNICIAN, username="tina")
    device = authenticator_for(tina)
    sign_in_with_password(client, "tina")
    wrong = code_for(device, NOW - dt.timedelta(hours=1))
    response = client.post(reverse("mfa_verify"), {"code": wrong})
    assert response.status_code == 200 and b"That code is not right" in response.content
    assert client.get(reverse("appliance_list")).status_code == 302
    event = AuditEvent.objects.get(action="auth.mfa_failed")
    assert event.actor == tina


def test_recovery_code_signs_in_once_only(client, db):
    tina = UserFactory(role=Role.TECHNICIAN, username="tina")
    authenticator_for(tina)
    from portal.mfa import _new_recovery_codes

    code = _new_recovery_codes(tina)[0]
    sign_in_with_password(client, "tina")
    response = client.post(reverse("mfa_verify"), {"code": code, "next": "/appliances/"})
    assert response["Location"] == "/appliances/"
    assert client.get(reverse("appliance_list")).status_code == 200
    assert StaticToken.objects.filter(device__user=tina).count() == 9

    client.post(reverse("logout"))
    sign_in_with_password(client, "tina")
    response = client.post(reverse("mfa_verify"), {"code": code})
    assert response.status_code == 200 and b"That code is not right" in response.content
    assert client.get(reverse("appliance_list")).status_code == 302


def test_customer_requiring_mfa_sends_its_users_to_enrol(client, db):
    acme = CustomerFactory(require_mfa=True)
    UserFactory(role=Role.CUSTOMER_USER, customer=acme, username="ann")
    sign_in_with_password(client, "ann")
    response = client.get(reverse("restore_home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_enrol"))


def test_customer_not_requiring_mfa_lets_its_users_in_with_a_password(client, db):
    UserFactory(role=Role.CUSTOMER_USER, customer=CustomerFactory(), username="ann")
    sign_in_with_password(client, "ann")
    assert client.get(reverse("restore_home")).status_code == 200


def test_customer_user_who_enrolled_voluntarily_is_asked_for_the_code(client, db):
    ann = UserFactory(role=Role.CUSTOMER_USER, customer=CustomerFactory(), username="ann")
    device = authenticator_for(ann)
    sign_in_with_password(client, "ann")
    assert client.get(reverse("restore_home"))["Location"].startswith(reverse("mfa_verify"))
    client.post(reverse("mfa_verify"), {"code": code_for(device)})
    assert client.get(reverse("restore_home")).status_code == 200


def test_customer_admin_turns_on_mfa_for_own_customer_only(client_for):
    client = client_for(Role.CUSTOMER_ADMIN)
    own = client.user.customer
    other = CustomerFactory()
    response = client.post(reverse("customer_edit", args=[other.pk]), {"require_mfa": "on"})
    assert response.status_code == 404
    other.refresh_from_db()
    assert not other.require_mfa
    response = client.post(reverse("customer_edit", args=[own.pk]), {"require_mfa": "on"})
    assert response.status_code == 302
    own.refresh_from_db()
    assert own.require_mfa
    # The admin's own session is not verified yet: it goes to enrol now.
    assert client.get(reverse("user_list"))["Location"].startswith(reverse("mfa_enrol"))


def test_msp_admin_sets_require_mfa_where_customers_are_edited(client_for):
    client = client_for(Role.MSP_ADMIN)
    acme = CustomerFactory(name="Acme")
    response = client.post(
        reverse("customer_edit", args=[acme.pk]),
        {"name": "Acme", "is_active": "on", "require_mfa": "on"},
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.require_mfa
