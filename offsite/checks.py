"""What the portal accepts as a vault endpoint, host key and throttle windows: the agent's own
parsers, so a value the portal saves is one every appliance takes, with form-sized errors."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from agent.errors import AgentError
from appliances.confinement import clean_host_key


def clean_endpoint(text: str) -> str:
    """``ssh://user@host[:port]/DIR`` or ``s3://bucket/prefix`` (a local vault directory too
    where local transports are allowed: the demo and tests); ValidationError otherwise."""
    from agent.vault.targets import parse_target

    text = (text or "").strip()
    try:
        target = parse_target(text)
    except AgentError as exc:
        raise ValidationError(str(exc).removeprefix("bdr-agent: ")) from None
    if target.kind == "dir" and (not settings.BDR_ALLOW_LOCAL_TRANSPORT or text != target.path):
        raise ValidationError(
            "Give ssh://user@host[:port]/DIR or s3://bucket/prefix"
            + (
                " (or an absolute vault directory, demo only)."
                if settings.BDR_ALLOW_LOCAL_TRANSPORT
                else "."
            )  # fmt: skip
        )
    return text


def endpoint_kind(endpoint: str) -> str:
    """ "ssh", "s3" or "dir"."""
    from agent.vault.targets import parse_target

    return parse_target(endpoint).kind


def clean_vault_host_key(text: str, endpoint: str) -> str:
    """The pinned host key an SSH vault needs ("" for the others, which have none)."""
    if not (text or "").strip():
        if endpoint.startswith("ssh://"):
            raise ValidationError("An SSH vault needs its host key (ssh-ed25519 AAAA…).")
        return ""
    return clean_host_key(text)


def clean_windows(text: str) -> str:
    """Throttle windows in the agent's grammar (``mon-fri 08:00-18:00 512kbit; * * 20mbit``),
    normalised to one space and ``; `` between rules; ValidationError naming the bad part."""
    from agent.vault.throttle import parse_windows

    rules = [" ".join(rule.split()) for rule in (text or "").split(";")]
    spec = "; ".join(rule for rule in rules if rule)
    try:
        parse_windows(spec)
    except AgentError as exc:
        raise ValidationError(str(exc).removeprefix("bdr-agent: ")) from None
    return spec
