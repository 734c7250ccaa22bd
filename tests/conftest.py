import pytest

from portal.models import Role
from tests.factories import CustomerFactory, UserFactory
from tests.support.signin import force_login_verified


@pytest.fixture
def make_user(db):
    """Build a user of ``role`` (of ``customer`` for customer roles)."""

    def make(role: Role, customer=None, **kwargs):
        if role in (Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER):
            customer = customer or CustomerFactory()
        else:
            customer = None
        return UserFactory(role=role, customer=customer, **kwargs)

    return make


@pytest.fixture
def client_for(client, make_user):
    """A test client signed in as a new user of ``role`` (OTP-verified when the role needs it)."""

    def make(role: Role, customer=None):
        user = make_user(role, customer)
        force_login_verified(client, user)
        client.user = user
        return client

    return make


@pytest.fixture(autouse=True)
def _empty_cache():
    """Password-reset limits count in Django's cache (per-process memory in tests): each test
    starts with nothing counted."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
