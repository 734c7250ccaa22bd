import re

from django.core import mail
from django.urls import reverse

from portal.models import AuditEvent, Role
from tests.factories import DEFAULT_PASSWORD, UserFactory


def test_sign_in_with_right_password_lands_on_dashboard_and_is_audited(client, db):
    user = UserFactory(role=Role.TECHNICIAN, username="tina")
    response = client.post(
        reverse("login"), {"username": "tina", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.1.2.3"
    )
    assert response.status_code == 302 and response["Location"] == reverse("home")
    event = AuditEvent.objects.get(action="auth.login")
    assert event.actor == user and event.ip_address == "10.1.2.3"


def test_sign_in_with_wrong_password_is_refused(client, db):
    UserFactory(role=Role.TECHNICIAN, username="tina")
    response = client.post(reverse("login"), {"username": "tina", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_customer_user_lands_on_restore_page(client, db):
    user = UserFactory(role=Role.CUSTOMER_USER)
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response["Location"] == reverse("restore_home")


def test_sign_out_needs_post_and_ends_session(client, db):
    client.force_login(UserFactory(role=Role.TECHNICIAN))
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("appliance_list")).status_code == 302


def test_password_change(client, db):
    user = UserFactory(role=Role.CUSTOMER_ADMIN)
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": DEFAULT_PASSWORD,
            "new_password1": "A-much-longer-pass-77",
            "new_password2": "A-much-longer-pass-77",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("A-much-longer-pass-77")


def test_password_reset_mail_goes_out_and_its_link_sets_a_new_password(client, db):
    user = UserFactory(role=Role.CUSTOMER_USER, email="ann@acme.example")
    client.post(reverse("password_reset"), {"email": "ann@acme.example"})
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0]
    response = client.post(
        form_url, {"new_password1": "Fresh-pass-2026!", "new_password2": "Fresh-pass-2026!"}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("Fresh-pass-2026!")


def test_login_page_has_csrf_protection(db):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    UserFactory(role=Role.TECHNICIAN, username="tina")
    response = strict.post(reverse("login"), {"username": "tina", "password": DEFAULT_PASSWORD})
    assert response.status_code == 403
