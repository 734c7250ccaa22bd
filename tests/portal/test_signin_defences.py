"""Lockout after repeated wrong passwords (axes), its audit and lifting, the reset throttle,
and the password validators on every way a password is set."""

import re

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal import services
from portal.models import AuditEvent, Role, User
from tests.factories import DEFAULT_PASSWORD, UserFactory

IP = "10.9.8.7"


def _sign_in(client, username, password, url=None, ip=IP):
    return client.post(
        url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def _lock_out(client, username, url=None):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = _sign_in(client, username, "wrong-guess", url)
    return response


def test_wrong_passwords_lock_the_account_and_the_right_one_is_then_refused(client, db):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    response = _lock_out(client, "tina")
    assert response.status_code == 429
    response = _sign_in(client, "tina", DEFAULT_PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed sign-ins for tina" in response.content
    assert "_auth_user_id" not in client.session


def test_failed_sign_ins_and_the_lockout_are_audited(client, db):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    _sign_in(client, "tina", "wrong-guess")
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.detail["username"] == "tina" and event.ip_address == IP
    _lock_out(client, "tina")
    lockout = AuditEvent.objects.get(action="auth.lockout")
    assert lockout.detail["username"] == "tina" and lockout.ip_address == IP
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == (
        1 + settings.AXES_FAILURE_LIMIT
    )


def test_lockout_is_per_username_and_address(client, db):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    _lock_out(client, "tina")
    response = _sign_in(client, "tina", DEFAULT_PASSWORD, ip="10.0.0.99")
    assert response.status_code == 302


def test_django_admin_login_is_throttled_too(client, db):
    UserFactory(role=Role.MSP_ADMIN, username="boss", is_staff=True, is_superuser=True)
    response = _lock_out(client, "boss", url="/admin/login/")
    assert response.status_code == 429
    assert _sign_in(client, "boss", DEFAULT_PASSWORD).status_code == 429


def test_msp_admin_sees_and_lifts_a_lockout_audited(client, client_for, db):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    _lock_out(client, "tina")
    client.cookies.clear()
    admin_client = client_for(Role.MSP_ADMIN)
    page = admin_client.get(reverse("lockout_list"))
    assert page.status_code == 200 and b"tina" in page.content and IP.encode() in page.content
    attempt = AccessAttempt.objects.get(username="tina")
    assert admin_client.get("/admin/axes/accessattempt/").status_code == 200
    response = admin_client.post(reverse("lockout_lift", args=[attempt.pk]))
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="auth.lockout_lifted").detail["username"] == "tina"
    admin_client.post(reverse("logout"))
    assert _sign_in(admin_client, "tina", DEFAULT_PASSWORD).status_code == 302


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CUSTOMER_ADMIN])
def test_only_msp_admins_see_lockouts(client_for, role):
    client = client_for(role)
    assert client.get(reverse("lockout_list")).status_code == 404


def test_password_reset_flood_is_throttled_per_email(client, db):
    UserFactory(role=Role.CUSTOMER_USER, email="ann@acme.example")
    statuses = [
        client.post(
            reverse("password_reset"), {"email": "ann@acme.example"}, REMOTE_ADDR=f"10.0.0.{i}"
        ).status_code
        for i in range(settings.BDR_RESET_LIMIT_PER_EMAIL + 3)
    ]
    limit = settings.BDR_RESET_LIMIT_PER_EMAIL
    assert statuses == [302] * limit + [429] * 3
    assert len(mail.outbox) == limit
    assert AuditEvent.objects.filter(action="auth.password_reset_throttled").count() == 3


def test_password_reset_flood_is_throttled_per_address(client, db):
    statuses = [
        client.post(reverse("password_reset"), {"email": f"x{i}@example.com"}).status_code
        for i in range(settings.BDR_RESET_LIMIT_PER_IP + 1)
    ]
    assert statuses[-1] == 429 and set(statuses[:-1]) == {302}
    assert (
        b"Too many password-reset requests"
        in client.post(reverse("password_reset"), {"email": "y@example.com"}).content
    )


def test_admin_setting_password_1_gets_a_form_error(client_for):
    client = client_for(Role.MSP_ADMIN)
    response = client.post(
        reverse("user_create"),
        {
            "username": "weak",
            "role": Role.TECHNICIAN,
            "is_active": "on",
            "password1": "1",
            "password2": "1",
        },
    )
    assert response.status_code == 200
    assert b"This password is too short" in response.content
    assert not User.objects.filter(username="weak").exists()


def test_editing_a_user_with_a_weak_password_is_refused(client_for):
    client = client_for(Role.CUSTOMER_ADMIN)
    victim = UserFactory(role=Role.CUSTOMER_USER, customer=client.user.customer, username="ann")
    response = client.post(
        reverse("user_edit", args=[victim.pk]),
        {
            "username": "ann",
            "role": Role.CUSTOMER_USER,
            "is_active": "on",
            "password1": "12345678",
            "password2": "12345678",
        },
    )
    assert response.status_code == 200 and b"This password is entirely numeric" in response.content
    victim.refresh_from_db()
    assert victim.check_password(DEFAULT_PASSWORD)


def test_save_user_refuses_a_weak_password(db):
    user = User(username="weak", role=Role.TECHNICIAN)
    with pytest.raises(ValidationError):
        services.save_user(user, actor=None, password="1")
    assert not User.objects.filter(username="weak").exists()


def test_password_reset_confirm_refuses_a_weak_password(client, db):
    UserFactory(role=Role.CUSTOMER_USER, email="ann@acme.example")
    client.post(reverse("password_reset"), {"email": "ann@acme.example"})
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "1", "new_password2": "1"})
    assert response.status_code == 200 and b"This password is too short" in response.content


def test_password_change_refuses_a_weak_password(client_for):
    client = client_for(Role.CUSTOMER_USER)
    response = client.post(
        reverse("password_change"),
        {"old_password": DEFAULT_PASSWORD, "new_password1": "1", "new_password2": "1"},
    )
    assert response.status_code == 200 and b"This password is too short" in response.content
