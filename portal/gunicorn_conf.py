"""gunicorn settings for the portal: ``gunicorn -c python:portal.gunicorn_conf portal.wsgi``
(``scripts/serve.sh`` runs exactly that). Environment variables tune it; command-line flags
override it. The README's "Running the portal" explains the numbers.

- ``gthread`` workers: a download streams for minutes, waiting on the appliance and on the
  client; threads wait cheaply, and the master's ``timeout`` watches the worker process, not
  one long request (the sync worker would kill a download after ``timeout`` seconds).
- ``worker_connections = threads`` (set in ``on_starting``, after the command line): a worker
  whose threads are all busy stops accepting, so a new request goes to a worker with a free
  thread instead of queueing behind downloads.
"""

from __future__ import annotations

import os

# Each thread keeps its PostgreSQL connection for a minute: opening one per request (Django's
# default, 0) costs a backend process and its catalog caches every time (bench/fleet.py).
os.environ.setdefault("CONN_MAX_AGE", "60")

bind = [os.environ.get("BDR_BIND", "127.0.0.1:8000")]
worker_class = "gthread"
workers = int(os.environ.get("BDR_WEB_WORKERS", "4"))
threads = int(os.environ.get("BDR_WEB_THREADS", "8"))
keepalive = 0  # every thread serves requests; the reverse proxy keeps clients' connections
# A worker that stops answering its master for this long is killed and replaced.
timeout = int(os.environ.get("BDR_WEB_TIMEOUT", "60"))
# On restart (deploy, SIGHUP) running downloads get this long to finish, then are cut.
graceful_timeout = int(os.environ.get("BDR_WEB_GRACEFUL_TIMEOUT", "120"))
# Workers are replaced now and then, so no one process grows for ever.
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
control_socket_disable = True  # not needed; its default path is shared by every gunicorn


def on_starting(server) -> None:
    """Refuse a public address while the portal uses the development keys."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from portal.bind_guard import PublicBindRefused, check_bind

    # As many connections per worker as threads, whatever set the threads (--threads on the
    # command line wins over this file): a worker allowed more accepts a request it cannot
    # serve while slow downloads hold every thread, instead of leaving it to another worker.
    server.cfg.set("worker_connections", server.cfg.threads)

    for address in server.cfg.bind:
        if address.startswith(("unix:", "fd://")):
            continue
        host = address.rpartition(":")[0] if ":" in address else address
        try:
            check_bind(host)
        except PublicBindRefused as exc:
            raise RuntimeError(str(exc)) from None
