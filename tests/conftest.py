import pytest

from portal.models import Role
from tests.factories import CustomerFactory, UserFactory


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
    """A test client signed in as a new user of ``role``."""

    def make(role: Role, customer=None):
        user = make_user(role, customer)
        client.force_login(user)
        client.user = user
        return client

    return make
