import json

import pytest

from portal.models import Role
from tests.factories import CustomerFactory, UserFactory
from tests.support.signin import force_login_verified


@pytest.fixture(scope="session", autouse=True)
def agent_confinement(tmp_path_factory):
    """The agent's confinement for the whole run: the run's temp folder is a source root and
    an export root (tests use temp files as volumes and folders), every default refusal
    stands. Agents started by the tests (CLI, local transport, over sshd) read this file."""
    base = tmp_path_factory.getbasetemp()
    path = base / "bdr-agent-confinement.json"
    path.write_text(json.dumps({"source_roots": [str(base)], "export_roots": [str(base)]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BDR_AGENT_CONFIG", str(path))
        yield path


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
