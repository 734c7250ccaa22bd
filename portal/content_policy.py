"""The Content-Security-Policy header (django-csp), with the VM console proxy's origin.

The policy itself is ``CONTENT_SECURITY_POLICY`` in settings. Its ``connect-src`` must also
name where the VM page's noVNC opens its websocket, ``BDR_CONSOLE_PROXY_URL``; this middleware
adds that origin as the setting reads when the page is served, so the two cannot disagree.
"""

from __future__ import annotations

from csp.constants import SELF
from csp.middleware import CSPMiddleware
from django.conf import settings


def websocket_origin(url: str) -> list[str]:
    """``ws://host:*`` for a proxy URL; nothing for a path, which 'self' covers. Any port of
    the proxy's host: a page served before the proxy moved to another port (tests start one
    on a free port) still reaches it, and the host is the one the operator named."""
    scheme, _, rest = url.partition("://")
    if not rest:
        return []
    netloc = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    return [f"{scheme}://{host}:*"]


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False):
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only:
            console = websocket_origin(settings.BDR_CONSOLE_PROXY_URL)
            parts.replace = {**(parts.replace or {}), "connect-src": [SELF, *console]}
        return parts
