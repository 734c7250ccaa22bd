"""Every URL of the project, with every role, against another tenant's ids.

A view added later that reads tenant data without ``for_user`` fails here: a customer's user
must get 404 for another customer's object (never 403, never 200), the page must not show the
other tenant's data, nothing may change in the database and no task may be queued.
A URL kwarg this test does not know fails the test until it is registered below.
"""

import re

import pytest
from celery.signals import before_task_publish, task_prerun
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from portal.models import Role
from tests import factories as f
from tests.support.signin import force_login_verified
from tests.tenancy_world import OTHER_MARK, Tenant, build_world

# Which object fills each URL kwarg.
KWARG_OBJECTS = {
    "customer_pk": "customer",
    "site_pk": "site",
    "appliance_pk": "appliance",
    "server_pk": "server",
    "volume_pk": "volume",
    "job_pk": "job",
    "alert_pk": "alert",
    "point_pk": "point",
    "user_pk": "user",
    "event_pk": "audit",
    "invoice_pk": "invoice",
    "subscription_pk": "subscription",
    "vm_pk": "vm",
    "window_pk": "maintenance",
    # Notification targets (MSP admins only): a customer's own recipient, endpoint, delivery.
    "recipient_pk": "recipient",
    "endpoint_pk": "endpoint",
    "delivery_pk": "delivery",
    "key_pk": "apikey",
    # Vaults are the MSP's inventory, not a tenant's: their pages are for MSP admins only.
    "vault_pk": "vault",
}
# DRF routes name their object "pk"; the route's basename says which object it is.
API_BASENAME_OBJECTS = {
    "api-customer": "customer",
    "api-appliance": "appliance",
    "api-server": "server",
    "api-job": "job",
    "api-point": "point",
    "api-status-server": "server",
    "api-status-alert": "alert",
}
# Kwargs that are not tenant objects, with a harmless value.
PLAIN_KWARGS = {"uidb64": "MQ", "token": "set-password", "format": "json", "lockout_pk": "1"}
# Pages open to anybody (sign-in and password reset); checked for 5xx only.
PUBLIC_NAMES = {
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "stripe_webhook",  # Stripe's calls: signature-checked, tested in tests/billing/test_webhooks.py
}
CUSTOMER_ROLES = [Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER]


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{prefix}{p.namespace}:" if p.namespace else prefix
            yield from _walk(p.url_patterns, ns)
        elif isinstance(p, URLPattern) and p.name:
            yield prefix + p.name, sorted(p.pattern.regex.groupindex)


def all_routes():
    seen = {}
    for name, kwargs in _walk(get_resolver().url_patterns):
        seen.setdefault((name, tuple(kwargs)), None)
    return list(seen)


def _object_for(name: str, kwarg: str) -> str | None:
    if kwarg == "pk" and name.startswith("api-"):
        for basename, obj in API_BASENAME_OBJECTS.items():
            if name.startswith(basename + "-"):
                return obj
        return None
    return KWARG_OBJECTS.get(kwarg)


def url_for(name: str, kwargs: tuple, tenant) -> str:
    values = {}
    for kw in kwargs:
        if kw in PLAIN_KWARGS:
            values[kw] = PLAIN_KWARGS[kw]
            continue
        obj = _object_for(name, kw)
        if obj is None:
            pytest.fail(f"URL {name!r} has kwarg {kw!r} unknown to the isolation test: register it")
        values[kw] = tenant.objects[obj].pk
    return reverse(name, kwargs=values)


def db_fingerprint():
    counts = {}
    for model in apps.get_models():
        if model._meta.label in {"sessions.Session"}:
            continue
        counts[model._meta.label] = model._default_manager.count()
    return counts


@pytest.fixture
def queued_tasks():
    seen = []

    def on_publish(sender=None, **kwargs):
        seen.append(sender)

    def on_prerun(sender=None, **kwargs):
        seen.append(getattr(sender, "name", sender))

    before_task_publish.connect(on_publish, weak=False)
    task_prerun.connect(on_prerun, weak=False)
    yield seen
    before_task_publish.disconnect(on_publish)
    task_prerun.disconnect(on_prerun)


def _is_admin(name: str) -> bool:
    return name.startswith("admin:")


def test_every_route_is_known_to_the_walker(db):
    world = build_world()
    for name, kwargs in all_routes():
        if not _is_admin(name):
            url_for(name, kwargs, world.other)


@pytest.mark.parametrize("role", CUSTOMER_ROLES)
def test_customer_roles_get_404_for_other_tenants_objects_everywhere(
    client, db, role, queued_tasks
):
    world = build_world()
    user = world.own.users[role]
    force_login_verified(client, user)
    before = db_fingerprint()
    checked = 0
    for name, kwargs in all_routes():
        if _is_admin(name):
            continue
        if name in PUBLIC_NAMES or not any(k not in PLAIN_KWARGS for k in kwargs):
            continue
        url = url_for(name, kwargs, world.other)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (404, 405), (
                f"{role} {method.upper()} {url} ({name}) answered {response.status_code}, not 404"
            )
            assert OTHER_MARK.encode() not in response.content, f"{url} leaks another tenant"
            checked += 1
    assert checked > 10
    assert db_fingerprint() == before, "a request for another tenant's object changed the database"
    assert queued_tasks == [], f"a request for another tenant's object queued {queued_tasks}"


@pytest.mark.parametrize("role", CUSTOMER_ROLES)
def test_customer_roles_never_see_other_tenants_data_on_any_page(client, db, role):
    world = build_world()
    force_login_verified(client, world.own.users[role])
    for name, kwargs in all_routes():
        if _is_admin(name) or name in PUBLIC_NAMES:
            continue
        url = url_for(name, kwargs, world.own)
        response = client.get(url)
        assert response.status_code < 500, f"{role} GET {url} answered {response.status_code}"
        assert OTHER_MARK.encode() not in response.content, f"{role} sees another tenant on {url}"


@pytest.mark.parametrize("role", CUSTOMER_ROLES + [Role.TECHNICIAN])
def test_only_msp_admins_reach_the_django_admin(client, db, role):
    world = build_world()
    user = world.own.users.get(role) or world.msp[role]
    force_login_verified(client, user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = client.get(reverse("admin:appliances_appliance_changelist"))
    assert response.status_code == 302


@pytest.mark.parametrize("role", [Role.MSP_ADMIN, Role.TECHNICIAN])
def test_msp_staff_pages_answer_without_errors_for_any_tenant(client, db, role):
    world = build_world()
    force_login_verified(client, world.msp[role])
    for name, kwargs in all_routes():
        if _is_admin(name):
            continue
        url = url_for(name, kwargs, world.other)
        response = client.get(url)
        assert response.status_code < 500, f"{role} GET {url} answered {response.status_code}"


# The objects that hang from a protected server (the API names them by basename).
SERVER_OBJECTS = {"server", "volume", "job", "point", "vm"}


def _ungranted_server(tenant: Tenant) -> Tenant:
    """``tenant`` with a second server, and everything under it, that nobody was granted."""
    server = f.ProtectedServerFactory(appliance=tenant.objects["appliance"], name="ungranted")
    point = f.RecoveryPointFactory(server=server)
    objects = {
        "server": server,
        "volume": f.VolumeFactory(server=server),
        "job": f.JobFactory(appliance=server.appliance, server=server),
        "point": point,
        "vm": f.VirtualMachineFactory(server=server, point=point),
    }
    return Tenant(customer=tenant.customer, objects={**tenant.objects, **objects})


def test_customer_user_gets_404_for_every_url_of_a_server_not_granted_to_them(
    client, db, queued_tasks
):
    world = build_world()
    user = world.own.users[Role.CUSTOMER_USER]
    f.RestoreGrantFactory(user=user, server=world.own.objects["server"])
    ungranted = _ungranted_server(world.own)
    force_login_verified(client, user)
    before = db_fingerprint()
    checked = 0
    for name, kwargs in all_routes():
        if _is_admin(name) or name in PUBLIC_NAMES:
            continue
        if not any(_object_for(name, k) in SERVER_OBJECTS for k in kwargs):
            continue
        url = url_for(name, kwargs, ungranted)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (404, 405), (
                f"{method.upper()} {url} ({name}) of an ungranted server answered "
                f"{response.status_code}, not 404"
            )
            checked += 1
    assert checked > 10
    assert db_fingerprint() == before and queued_tasks == []
    # the granted server's restore pages still open
    granted = reverse("restore_server_points", args=[world.own.objects["server"].pk])
    assert client.get(granted).status_code == 200
    home = client.get(reverse("restore_home")).content.decode()
    assert "ungranted" not in home


def test_technicians_do_not_see_billing_or_user_admin(client, db):
    world = build_world()
    force_login_verified(client, world.msp[Role.TECHNICIAN])
    for name, kwargs in all_routes():
        if re.match(r"^(billing_|user_|audit_)", name):
            assert client.get(url_for(name, kwargs, world.other)).status_code == 404, name


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    world = build_world()
    for name, kwargs in all_routes():
        if _is_admin(name) or name in PUBLIC_NAMES:
            continue
        response = client.get(url_for(name, kwargs, world.other))
        assert response.status_code in (302, 401, 403), f"{name} open to anonymous visitors"
        assert OTHER_MARK.encode() not in response.content
