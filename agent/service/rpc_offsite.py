"""The rpc's off-site methods: start a replication (a job like a backup), the off-site
status of every point, and the appliance's public key for its vault hosts."""

from __future__ import annotations

from pathlib import Path

from agent.service import jobs
from agent.service.rpc_protocol import RpcError


class OffsiteMethods:
    """Handlers of one session."""

    def __init__(self, store: Path):
        self.store = Path(store)

    def methods(self) -> dict:
        """Method name -> handler."""
        return {
            "replicate.start": self.replicate_start,
            "offsite.status": self.offsite_status,
            "offsite.key": self.offsite_key,
        }

    def replicate_start(
        self,
        req_id,
        target: str = "",
        server: str = "",
        limit: str | None = None,
        windows: str | None = None,
        order: str = "",
        ref: str = "",
    ) -> dict:
        """Start a ``replicate`` job (default: the settings' vault, limit and windows)."""
        from agent.errors import UsageError
        from agent.service.offsite import resolve_target
        from agent.vault.throttle import parse_rate, parse_windows

        texts = (target, server, limit or "", windows or "", order, ref)
        if not all(isinstance(t, str) for t in texts):
            raise RpcError("bad_params", "replicate.start takes text parameters")
        try:
            resolved = resolve_target(self.store, target or None)
            parse_rate(limit)
            parse_windows(windows)
        except UsageError as exc:
            raise RpcError("bad_params", str(exc)) from None
        if order not in ("", "newest", "oldest"):
            raise RpcError("bad_params", "order must be newest or oldest")
        params = {
            "target": resolved.text,
            "server": server or None,
            "limit": limit,
            "windows": windows,
            "order": order or None,
        }
        return jobs.start_job(self.store, "replicate", params, ref=ref)

    def offsite_status(self, req_id, refresh: bool = False) -> dict:
        """Per point its copies; backlog bytes, rate, ETA and lag (see agent/README.md)."""
        from agent.errors import AgentError
        from agent.service.offsite import status

        try:
            return status(self.store, refresh=bool(refresh))
        except AgentError as exc:
            raise RpcError("agent_error", str(exc)) from None

    def offsite_key(self, req_id) -> dict:
        """The public key this appliance presents to vault hosts (made on first use)."""
        from agent.offsite.replicate import vault_files

        identity = vault_files(self.store)[1]
        return {"public_key": Path(f"{identity}.pub").read_text().strip()}
