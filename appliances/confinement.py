"""The portal's early check of what it asks an appliance to read or write, with form-sized
errors: volume sources, put-back and export folders, bare-metal targets and host keys.

The appliance's agent makes the real check (``agent.confinement``, with its own roots, which
the portal does not know and cannot change); these refuse early what no appliance allows, and
``audit_refusal`` records what an appliance refused.
"""

from __future__ import annotations

import posixpath

from django.core.exceptions import ValidationError

from agent.confinement import TARGET, parse_host_key, system_reason
from portal import audit


def _normal(path: str, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise ValidationError(f"The {what} must be an absolute path.")
    if ".." in path.split("/"):
        raise ValidationError(f"The {what} must not contain '..'.")
    return posixpath.normpath(path)


def validate_volume_source(source: str) -> None:
    """A block device (/dev/...) or an image file on the appliance, never a system or SSH
    file; ValidationError otherwise."""
    reason = system_reason(_normal(source, "volume source"))
    if reason:
        raise ValidationError(f"Refused: {reason} ({source}). Use a block device or an image file.")


def validate_appliance_folder(folder: str) -> str:
    """``folder`` normalised when put-back or an export may name it; ValidationError if not."""
    normal = _normal(folder, "folder")
    reason = system_reason(normal)
    if reason:
        raise ValidationError(f"Refused: {reason} ({folder}).")
    return normal


def validate_target(target: str) -> None:
    if not TARGET.match(target or ""):
        raise ValidationError("The target is user@host (letters, digits, '.', '-', '_').")


def clean_host_key(text: str) -> str:
    """``"type base64"`` of a pasted host key line; a trailing comment is dropped, anything
    else (options, markers, a second line) is a ValidationError."""
    words = (text or "").strip().split(" ")
    if "\n" in text.strip() or "\r" in text:
        raise ValidationError("Paste exactly one host key line.")
    key = parse_host_key(" ".join(words[:2]))
    if key is None or any(not w.isprintable() for w in words[2:]):
        raise ValidationError(
            "Paste one host key: 'ssh-ed25519 AAAA…' (or ecdsa-sha2-…, ssh-rsa), no options."
        )
    return key


def audit_refusal(code: str | None, message: str, obj, *, actor=None, request=None) -> None:
    """Record an appliance's ``refused`` answer or job error (the agent's confinement) as an
    AuditEvent on ``obj``; any other code is not a refusal and records nothing."""
    if code == "refused":
        detail = {"message": str(message)[:500]}
        audit.record(actor, "appliance.path_refused", obj, request=request, detail=detail)
