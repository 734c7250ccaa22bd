import pytest

from tests.support.tenants import make_store


@pytest.fixture(scope="session")
def limits_store(tmp_path_factory):
    """One agent store for the security tests' tenants (tests/support/tenants.py)."""
    return make_store(tmp_path_factory.mktemp("limits-store"))
