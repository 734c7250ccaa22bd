"""Who may open which page. A page a role may not use answers 404, like a missing object."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404

from portal.models import Role


def roles_required(*roles: Role):
    """Allow only signed-in users with one of ``roles``; everybody else gets 404."""
    allowed = frozenset(roles)

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if request.user.role not in allowed:
                raise Http404("Page not found")
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = allowed
        return wrapped

    return decorator


msp_required = roles_required(Role.MSP_ADMIN, Role.TECHNICIAN)
msp_admin_required = roles_required(Role.MSP_ADMIN)
admins_required = roles_required(Role.MSP_ADMIN, Role.CUSTOMER_ADMIN)
any_role_required = roles_required(*Role)
