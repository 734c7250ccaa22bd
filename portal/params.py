"""Query and form parameters, parsed strictly.

A value a view does not understand is answered 400 with a sentence naming the parameter and
what it takes (``BadParameter``, rendered by ``bad_request``, the project's handler400): never
a 500, and never silently read as something else. ``"²".isdigit()`` is true and ``int("²")``
fails, so numbers are ASCII digits only, and bounded.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import BadRequest
from django.shortcuts import render

MAX_INT = 2**31 - 1


class BadParameter(BadRequest):
    """A query or form parameter that is not what the page takes; the message says why."""


def _shown(raw: str) -> str:
    return repr(raw[:40] + ("…" if len(raw) > 40 else ""))


def int_param(
    data, name: str, *, default: int | None = None, minimum: int = 0, maximum: int = MAX_INT
) -> int | None:
    """``data[name]`` as an int in [minimum, maximum]; ``default`` when absent or empty."""
    raw = data.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        raise BadParameter(f"{name} must be a whole number, not {_shown(raw)}.")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadParameter(f"{name} must be between {minimum} and {maximum}, not {value}.")
    return value


def choice_param(data, name: str, choices: Iterable[str], *, default: str = "") -> str:
    """``data[name]`` if it is one of ``choices``; ``default`` when absent or empty."""
    raw = data.get(name)
    if raw is None or raw == "":
        return default
    allowed = list(choices)
    if raw not in allowed:
        raise BadParameter(f"{name} must be one of {', '.join(allowed)}, not {_shown(raw)}.")
    return raw


def bad_request(request, exception=None):
    """handler400: the reason for a BadParameter, a plain sentence for anything else."""
    message = (
        str(exception)
        if isinstance(exception, BadParameter)
        else "The request could not be understood."
    )
    return render(request, "400.html", {"message": message}, status=400)
