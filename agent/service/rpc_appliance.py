"""The rpc's appliance methods: status, protected servers, settings, jobs and points."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict

from agent.confinement import check_source
from agent.errors import AgentError
from agent.records import utc_now
from agent.service import appliance_config as config
from agent.service import jobs
from agent.service.rpc_protocol import SENT, RpcError
from agent.service.servers import set_retention, start_backup


class ApplianceMethods:
    """Handlers of one session (``session.send`` for the events of ``jobs.follow``)."""

    def __init__(self, session):
        self.session = session
        self.store = session.store

    def methods(self) -> dict:
        """Method name -> handler."""
        return {
            "status": self.status,
            "servers.list": self.servers_list,
            "servers.configure": self.servers_configure,
            "servers.remove": self.servers_remove,
            "backup.start": self.backup_start,
            "verify.start": self.verify_start,
            "rollup.start": self.rollup_start,
            "jobs.list": self.jobs_list,
            "jobs.status": self.jobs_status,
            "jobs.follow": self.jobs_follow,
            "jobs.cancel": self.jobs_cancel,
            "jobs.log": self.jobs_log,
            "points.list": self.points_list,
            "settings.get": self.settings_get,
            "settings.set": self.settings_set,
        }

    def status(self, req_id) -> dict:
        usage = shutil.disk_usage(self.store)
        return {
            "time": utc_now(),
            "capacity_bytes": usage.total,
            "used_bytes": usage.total - usage.free,
            "free_bytes": usage.free,
            "servers": sorted(config.load_servers(self.store)),
            "active_jobs": [j["id"] for j in jobs.list_jobs(self.store, active_only=True)],
        }

    def servers_list(self, req_id) -> list[dict]:
        return [asdict(s) for s in config.load_servers(self.store).values()]

    def servers_configure(
        self,
        req_id,
        name: str,
        volumes: dict,
        schedule: dict | None = None,
        retention: dict | None = None,
    ) -> dict:
        server = config.server_from_dict(
            {"name": name, "volumes": volumes, "schedule": schedule or {}}
        )
        for source in server.volumes.values():
            check_source(self.store, source)
        if retention is not None:
            set_retention(self.store, name, retention)
        config.save_server(self.store, server)
        return asdict(server)

    def servers_remove(self, req_id, name: str) -> dict:
        return {"removed": config.remove_server(self.store, name)}

    def backup_start(
        self, req_id, server: str, volume: str | None = None, ref: str = "", at: str | None = None
    ) -> dict:
        return start_backup(self.store, server, volume, ref=ref, at=at)

    def verify_start(self, req_id, points: list | None = None, ref: str = "") -> dict:
        if points is not None and not all(isinstance(p, str) for p in points):
            raise RpcError("bad_params", "points must be a list of point ids")
        return jobs.start_job(self.store, "verify", {"points": points or []}, ref=ref)

    def rollup_start(self, req_id, ref: str = "", now: str | None = None) -> dict:
        return jobs.start_job(self.store, "rollup", {"now": now} if now else {}, ref=ref)

    def jobs_list(self, req_id, active: bool = False, limit: int = 100) -> list[dict]:
        return jobs.list_jobs(self.store, active_only=bool(active), limit=int(limit))

    def jobs_status(self, req_id, id: str) -> dict:  # noqa: A002 - the protocol's name
        return jobs.read_job(self.store, str(id))

    def jobs_follow(self, req_id, id: str, timeout: float = 3600, interval: float = 0.5):  # noqa: A002
        """Send the record as an event whenever it changes, then the final record."""
        deadline = time.monotonic() + float(timeout)
        last = None
        while True:
            job = jobs.read_job(self.store, str(id))
            if job != last:
                self.session.send({"id": req_id, "event": job})
                last = job
            if job["state"] not in jobs.ACTIVE or time.monotonic() > deadline:
                self.session.send({"id": req_id, "ok": True, "result": job})
                return SENT
            time.sleep(max(0.05, float(interval)))

    def jobs_cancel(self, req_id, id: str) -> dict:  # noqa: A002
        return jobs.cancel_job(self.store, str(id))

    def jobs_log(self, req_id, id: str) -> dict:  # noqa: A002
        return {"log": jobs.read_log(self.store, str(id))}

    def points_list(self, req_id, server: str | None = None) -> list:
        from agent.store.datastore import Store

        try:
            return [p.to_json() for p in Store.open(self.store).list_points(server or None)]
        except AgentError as exc:
            raise RpcError("agent_error", str(exc)) from None

    def settings_get(self, req_id) -> dict:
        return config.load_settings(self.store)

    def settings_set(self, req_id, **changes) -> dict:
        return config.save_settings(self.store, changes)
