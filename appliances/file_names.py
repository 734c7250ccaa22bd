"""File names from a recovery point, as the portal shows them and addresses them.

A filesystem name is bytes: ext4 allows every byte but ``/`` and NUL, so a name may hold a
backslash, a newline, or bytes that are not UTF-8. The agent hands names over as ``str``
decoded with ``surrogateescape`` (a byte that is not UTF-8, ``0xff``, is the lone surrogate
``U+DCFF``; JSON carries it as ``"\\udcff"``), which gives the exact bytes back. That ``str``
cannot go everywhere as it is: pages and headers are UTF-8, PostgreSQL's JSON refuses lone
surrogates and NUL, and a browser sends a newline in a form field as CR LF. So the portal uses
two other forms:

- **shown** (``display_name``): a byte that is not UTF-8 as U+FFFD, a control character as its
  visible symbol (a newline as U+240A); for people only, never used to find a file.
- **addressed** (``path_param``): in links, forms, download tokens, job parameters and the
  audit log. A path that is UTF-8 without control characters is itself (``/Users/ann``,
  ``/odd/back\\slash``); any other is ``~`` followed by the URL-safe base64 of its bytes (no
  padding), e.g. ``/bad\\xff`` is ``~L2JhZP8``. A real path always starts with ``/``, so the
  two cannot be confused; ``parse_path_param`` turns either back into the exact path.
"""

from __future__ import annotations

import base64
import binascii

ESCAPE = "~"


class BadPathParam(ValueError):
    """A ``~`` form that is not base64 of a path."""


def _is_plain(text: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def path_param(path: str) -> str:
    """``path`` in the form links, forms, tokens, job parameters and audit events carry."""
    if _is_plain(path):
        return path
    raw = path.encode("utf-8", errors="surrogateescape")
    return ESCAPE + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def parse_path_param(value: str) -> str:
    """The exact path a ``path_param`` form stands for (a plain path is returned as is)."""
    if not value.startswith(ESCAPE):
        return value
    body = value[len(ESCAPE) :]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise BadPathParam(f"not an escaped path: {value[:100]!r}") from None
    return raw.decode("utf-8", errors="surrogateescape")


def display_name(name: str) -> str:
    """``name`` for people: undecodable bytes as U+FFFD, control characters made visible."""
    out = []
    for c in name:
        n = ord(c)
        if 0xD800 <= n <= 0xDFFF:
            out.append("\ufffd")
        elif n < 0x20:
            out.append(chr(0x2400 + n))
        elif n == 0x7F:
            out.append("\u2421")
        else:
            out.append(c)
    return "".join(out)
