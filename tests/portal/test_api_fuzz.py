"""Schemathesis against our own OpenAPI schema: whatever it sends, no role gets a 5xx.

The schema comes from drf-spectacular (/api/schema/); requests go to a live server with a
signed-in session of each role, CSRF included, so writes are exercised too.
"""

import pytest
import schemathesis
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django_otp import DEVICE_ID_SESSION_KEY
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from portal import mfa
from tests.support.signin import authenticator_for
from tests.tenancy_world import build_world

CSRF = "a" * 32


def _headers_for(user, base_url: str) -> dict[str, str]:
    """Request headers of a signed-in (and, if needed, OTP-verified) browser session of
    ``user``, CSRF token included."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    if mfa.mfa_required(user):  # signed in with the second factor, as MSP staff must be
        store[DEVICE_ID_SESSION_KEY] = authenticator_for(user).persistent_id
    store.save()
    return {
        "Cookie": (
            f"{settings.SESSION_COOKIE_NAME}={store.session_key}; "
            f"{settings.CSRF_COOKIE_NAME}={CSRF}"
        ),
        "X-CSRFToken": CSRF,
        "Referer": base_url,
    }


@pytest.fixture
def world(transactional_db):
    return build_world()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_api_never_answers_5xx_to_any_role(live_server, world):
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    users = (*world.msp.values(), *world.own.users.values())
    identities = [_headers_for(user, live_server.url) for user in users]
    statuses = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.method.upper() for op in operations} >= {"GET", "POST"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def no_server_error(case):
            if isinstance(case.body, dict) and "appliance" in case.body:
                # Random ids almost never exist: aim writes at a real appliance too.
                case.body["appliance"] = world.own.objects["appliance"].pk
            for headers in identities:
                response = case.call_and_validate(
                    base_url=live_server.url, headers=headers, checks=[not_a_server_error]
                )
                statuses.append((case.method, response.status_code))

        no_server_error()
    # The fuzzing got past authentication and made real writes, not only 403s and 404s.
    assert ("GET", 200) in statuses and ("POST", 201) in statuses, sorted(set(statuses))
