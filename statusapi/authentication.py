"""``Authorization: Bearer <key>`` for the Status API.

The key becomes an unsaved principal User whose role and customer give exactly the key's
scope, so the API reads tenant data through the same ``for_user`` as every page: an
MSP-wide key sees what a technician sees, a customer key what that customer's admin sees.
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from portal.models import Role, User
from statusapi import services
from statusapi.models import ApiKey


def principal_for(key: ApiKey) -> User:
    """The user-shaped stand-in for ``key`` (never saved)."""
    if key.customer_id is None:
        user = User(role=Role.TECHNICIAN, username=f"api-key:{key.prefix}")
    else:
        user = User(
            role=Role.CUSTOMER_ADMIN, customer=key.customer, username=f"api-key:{key.prefix}"
        )
    user.api_key = key
    return user


class ApiKeyAuthentication(BaseAuthentication):
    """A Status API key in the Authorization header; a request without one is left to the
    next authentication class (a signed-in browser session)."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("The Authorization header must be: Bearer <key>.")
        try:
            presented = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Unknown, expired or revoked API key.") from None
        key = services.authenticate_key(presented, timezone.now())
        if key is None:
            raise AuthenticationFailed("Unknown, expired or revoked API key.")
        return principal_for(key), key

    def authenticate_header(self, request):
        return 'Bearer realm="status-api"'
