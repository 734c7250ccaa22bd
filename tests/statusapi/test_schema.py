"""The Status API in the OpenAPI schema: valid, with the bearer scheme, and every answer a
fuzzed request gets (with a read-write key) matches the schema and is never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.factories import issue_api_key

STATUS_PATHS = {
    "/api/status/fleet/",
    "/api/status/servers/",
    "/api/status/servers/{server}/",
    "/api/status/alerts/",
    "/api/status/alerts/{id}/",
    "/api/status/alerts/{id}/acknowledge/",
}


def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_schema_is_valid_openapi_and_holds_the_status_api(db):
    schema = _schema()
    validate(schema)
    assert STATUS_PATHS <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["statusApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A Status API key an MSP admin issued (Status API keys page).",
    }
    servers = schema["paths"]["/api/status/servers/"]["get"]
    params = {p["name"] for p in servers["parameters"]}
    assert {"cursor", "page_size", "state", "customer"} <= params


def test_schema_is_served_to_a_key(db, client):
    _, plaintext = issue_api_key()
    response = client.get(reverse("api-schema"), HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert response.status_code == 200 and b"/api/status/servers/" in response.content


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_fuzzed_status_api_requests_conform_to_the_schema(live_server, fleet):
    schema = schemathesis.openapi.from_dict(_schema())
    _, plaintext = issue_api_key(access="write")
    headers = {"Authorization": f"Bearer {plaintext}"}
    operations = [op.ok() for op in schema.get_all_operations() if op.ok().path in STATUS_PATHS]
    assert len(operations) == len(STATUS_PATHS)
    statuses = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def conforms(case):
            response = case.call_and_validate(
                base_url=live_server.url, headers=headers,
                checks=[not_a_server_error, response_schema_conformance],
            )  # fmt: skip
            statuses.append((case.method, response.status_code))

        conforms()
    assert ("GET", 200) in statuses, sorted(set(statuses))
