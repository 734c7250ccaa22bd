"""Billing pages parse their parameters strictly: a month, a status or a page number they do
not understand is a 400 with a message, and no parameter or signature makes them answer 5xx."""

import pytest
from django.urls import reverse
from hypothesis import strategies as st

from portal.models import Role
from tests import factories as f
from tests.support.param_fuzz import MONTHISH, NUMBERISH, TEXT, assert_never_5xx, params_of
from tests.support.signin import force_login_verified


@pytest.fixture
def admin_client(client, db):
    force_login_verified(client, f.UserFactory(role=Role.MSP_ADMIN))
    return client


@pytest.mark.parametrize(
    ("name", "query", "says"),
    [
        ("billing_invoices", {"month": "2026-13"}, "month must be YYYY-MM"),
        ("billing_invoices", {"month": "2026-²"}, "month must be YYYY-MM"),
        ("billing_invoices", {"month": "9999-12"}, "between 2000 and 2199"),
        ("billing_invoices", {"status": "lost"}, "status must be one of"),
        ("billing_invoices", {"page": "²"}, "page must be a whole number"),
        ("billing_invoices_csv", {"month": "March"}, "month must be YYYY-MM"),
        ("billing_reports", {"month": "0001-01"}, "between 2000 and 2199"),
        ("billing_report_consumers_csv", {"month": "2026-3"}, "month must be YYYY-MM"),
    ],
)
def test_a_parameter_the_page_does_not_take_is_a_400_saying_so(admin_client, name, query, says):
    response = admin_client.get(reverse(name), query)
    assert response.status_code == 400
    assert says in response.content.decode()


def test_good_parameters_still_work(admin_client):
    url = reverse("billing_invoices")
    assert (
        admin_client.get(url, {"month": "2026-03", "status": "draft", "page": "1"}).status_code
        == 200
    )
    assert admin_client.get(reverse("billing_reports"), {"month": "2026-03"}).status_code == 200


def test_billing_pages_never_answer_5xx(admin_client, settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_fuzz"
    for name in ("billing_invoices", "billing_invoices_csv"):
        url = reverse(name)
        assert_never_5xx(lambda q, url=url: admin_client.get(url, q),
                         params_of(month=MONTHISH, status=TEXT, page=NUMBERISH))  # fmt: skip
    for name in ("billing_reports", "billing_report_consumers_csv", "billing_subscriptions"):
        url = reverse(name)
        assert_never_5xx(lambda q, url=url: admin_client.get(url, q),
                         params_of(month=MONTHISH, page=NUMBERISH), examples=20)  # fmt: skip
    run = reverse("billing_run_month")
    assert_never_5xx(lambda q: admin_client.post(run, q), params_of(month=MONTHISH), examples=20)
    webhook = reverse("stripe_webhook")
    assert_never_5xx(
        lambda sig: admin_client.post(webhook, "{}", content_type="application/json",
                                      HTTP_STRIPE_SIGNATURE=sig),
        st.one_of(TEXT, NUMBERISH.map(lambda t: f"t={t},v1=00")),
    )  # fmt: skip
