"""Sign-in defences: failed sign-ins and lockouts audited, lockouts lifted, resets throttled.

django-axes counts failures and locks out (by username and address together); the handler
below is axes's database handler, configured in ``AXES_HANDLER``, that also writes our audit
log. Password-reset requests are limited here, in Django's cache, since axes does not see them.
"""

from __future__ import annotations

import hashlib

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

from portal import audit
from portal.models import User


class AuditingAxesHandler(AxesDatabaseHandler):
    """Axes's database handler, plus one AuditEvent per failed sign-in and per lockout."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        if request is None:
            return
        username = str(credentials.get(settings.AXES_USERNAME_FORM_FIELD) or "")[:150]
        detail = {"username": username, "path": request.path}
        audit.record(None, "auth.login_failed", request=request, detail=detail)
        # Tries during a lockout count on (and extend it); the lockout itself is the failure
        # that reached the limit.
        failures = getattr(request, "axes_failures_since_start", None)
        if failures == get_failure_limit(request, credentials):
            audit.record(None, "auth.lockout", request=request, detail=detail)


def current_lockouts() -> QuerySet[AccessAttempt]:
    """Username+address pairs that have reached the failure limit and are still locked."""
    return AccessAttempt.objects.filter(
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT
    ).order_by("-attempt_time")


@transaction.atomic
def lift_lockout(attempt_pk: int, *, actor: User, request=None) -> AccessAttempt | None:
    """Forget the failures of one username+address pair, so it may sign in again; audited."""
    attempt = AccessAttempt.objects.filter(pk=attempt_pk).first()
    if attempt is None:
        return None
    attempt.delete()
    audit.record(
        actor,
        "auth.lockout_lifted",
        request=request,
        detail={"username": attempt.username, "ip_address": attempt.ip_address},
    )
    return attempt


def reset_request_allowed(request, email: str) -> bool:
    """Count one password-reset request; False once the address or the e-mail is over its
    limit for the window (``BDR_RESET_LIMIT_PER_IP`` / ``_PER_EMAIL`` per
    ``BDR_RESET_WINDOW_SECONDS``)."""
    window = settings.BDR_RESET_WINDOW_SECONDS
    checks = [
        (f"bdr-reset:ip:{audit.client_ip(request)}", settings.BDR_RESET_LIMIT_PER_IP),
        (f"bdr-reset:email:{_digest(email)}", settings.BDR_RESET_LIMIT_PER_EMAIL),
    ]
    allowed = True
    for key, limit in checks:
        cache.add(key, 0, timeout=window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)
            count = 1
        allowed = allowed and count <= limit
    return allowed


def _digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()
