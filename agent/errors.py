"""The agent's errors, each carrying the exit code the CLI reports for it."""

import errno


class AgentError(Exception):
    """A failure the CLI reports as one line; ``exit_code`` follows DESIGN.md."""

    exit_code = 1


class UsageError(AgentError):
    """Bad input: an unknown point, a malformed name or time."""

    exit_code = 2


class Refused(AgentError):
    """A path or target outside the appliance's confinement (``agent.confinement``)."""

    exit_code = 2


class StoreError(AgentError):
    """The store is missing, unreadable or not a bdr-agent store."""


class WrongKey(AgentError):
    """The key file is missing, malformed or not the store's key."""


class DamageFound(AgentError):
    """Data failed authentication: a damaged chunk, index or catalog."""

    exit_code = 3


class LockHeld(AgentError):
    """Another live process holds the lock this operation needs."""

    exit_code = 4


class LockLost(AgentError):
    """Our lock expired or was broken by another process; nothing was committed."""

    exit_code = 4


class SourceChanged(AgentError):
    """The source volume changed size or content while it was being read."""


def failure_line(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit code a failure is reported with, or None for a bug (which
    deserves its traceback). Shared by the CLI and the job worker."""
    if isinstance(exc, AgentError):
        return str(exc), exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; nothing was committed by an unfinished command", 1
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full{where}; nothing was committed and earlier points are intact", 1
        return f"{exc.strerror or exc}{where}", 1
    return None
