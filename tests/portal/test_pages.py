"""Pages by role: navigation, list pages with constant queries, customers, sites, users."""

from django.urls import reverse

from portal.models import AuditEvent, Customer, Role, User
from tests.factories import (
    AlertFactory,
    ApplianceFactory,
    AuditEventFactory,
    CustomerFactory,
    JobFactory,
    ProtectedServerFactory,
    RecoveryPointFactory,
    RestoreGrantFactory,
    SiteFactory,
    UserFactory,
)
from tests.support.signin import force_login_verified


def test_navigation_differs_by_role(client_for):
    client = client_for(Role.CUSTOMER_USER)
    html = client.get(reverse("restore_home")).content.decode()
    assert "Restore files" in html and "Appliances" not in html and "Billing" not in html
    client = client_for(Role.TECHNICIAN)
    html = client.get(reverse("home")).content.decode()
    assert "Appliances" in html and "Customers" in html and ">Users<" not in html


def _populate(n):
    for _ in range(n):
        appliance = ApplianceFactory()
        server = ProtectedServerFactory(appliance=appliance)
        JobFactory(appliance=appliance, server=server)
        AlertFactory(appliance=appliance)
        RecoveryPointFactory(server=server)
        AuditEventFactory(customer=appliance.customer)
        RestoreGrantFactory(server=server)


LIST_PAGES = [
    "home",
    "customer_list",
    "appliance_list",
    "job_list",
    "alert_list",
    "user_list",
    "audit_list",
    "restore_home",
]


def test_list_pages_use_a_constant_number_of_queries(client, db, django_assert_max_num_queries):
    admin = UserFactory(role=Role.MSP_ADMIN)
    force_login_verified(client, admin)
    _populate(2)
    small = {}
    for name in LIST_PAGES:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse(name)).status_code == 200
        small[name] = len(ctx.captured_queries)
    _populate(12)
    for name in LIST_PAGES:
        with django_assert_max_num_queries(small[name]):
            assert client.get(reverse(name)).status_code == 200


def test_restore_points_page_has_constant_queries(client, db, django_assert_max_num_queries):
    server = ProtectedServerFactory()
    user = RestoreGrantFactory(server=server).user
    force_login_verified(client, user)
    RecoveryPointFactory.create_batch(3, server=server)
    # 9: one of them is the MFA middleware asking whether this user has an authenticator.
    with django_assert_max_num_queries(9):
        client.get(reverse("restore_server_points", args=[server.pk]))
    RecoveryPointFactory.create_batch(60, server=server)
    with django_assert_max_num_queries(9):
        response = client.get(reverse("restore_server_points", args=[server.pk]))
    assert response.content.count(b"<tr>") == 64


def test_msp_admin_creates_customer_and_site_audited(client_for):
    client = client_for(Role.MSP_ADMIN)
    response = client.post(
        reverse("customer_create"),
        {"name": "Initech", "contact_email": "it@initech.example", "is_active": "on"},
    )
    customer = Customer.objects.get(name="Initech")
    assert response.status_code == 302
    client.post(reverse("site_create", args=[customer.pk]), {"name": "HQ", "timezone": "UTC"})
    assert customer.sites.get().name == "HQ"
    assert list(
        AuditEvent.objects.filter(customer=customer).values_list("action", flat=True).order_by("id")
    ) == ["customer.create", "site.create"]


def test_technician_cannot_create_customers(client_for):
    client = client_for(Role.TECHNICIAN)
    assert client.post(reverse("customer_create"), {"name": "X"}).status_code == 404
    assert not Customer.objects.filter(name="X").exists()


def test_duplicate_customer_name_is_a_form_error_not_a_crash(client_for):
    CustomerFactory(name="Acme")
    client = client_for(Role.MSP_ADMIN)
    response = client.post(reverse("customer_create"), {"name": "Acme"})
    assert response.status_code == 200 and b"already exists" in response.content


def test_customer_admin_creates_users_only_in_own_customer(client_for):
    other = CustomerFactory()
    client = client_for(Role.CUSTOMER_ADMIN)
    me = client.user
    response = client.post(
        reverse("user_create"),
        {
            "username": "newbie",
            "role": Role.CUSTOMER_USER,
            "customer": other.pk,
            "is_active": "on",
            "password1": "Str0ng-enough-pass",
            "password2": "Str0ng-enough-pass",
        },
    )
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert newbie.customer == me.customer and not newbie.is_staff
    response = client.post(
        reverse("user_create"),
        {
            "username": "sneaky",
            "role": Role.MSP_ADMIN,
            "is_active": "on",
            "password1": "Str0ng-enough-pass",
            "password2": "Str0ng-enough-pass",
        },
    )
    assert response.status_code == 200
    assert not User.objects.filter(username="sneaky").exists()


def test_sites_belong_to_their_customer(db):
    site = SiteFactory()
    assert site.customer.sites.get() == site
