"""Serve VM consoles: the websocket bridge between noVNC in the browser and the appliances.

Run one process next to the portal (behind the same TLS reverse proxy, see the README's
Virtualization section); the VM page asks the portal for a one-time token and connects here.
"""

import asyncio

from django.core.management.base import BaseCommand

from restores.console_proxy import serve_consoles


class Command(BaseCommand):
    help = "Serve the VM console websocket bridge (noVNC <-> appliance rpc vm.console)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=6080)

    def handle(self, *args, host: str, port: int, **options):
        def started(bound: int) -> None:
            self.stdout.write(f"console proxy listening on ws://{host}:{bound}/", ending="\n")
            self.stdout.flush()

        try:
            asyncio.run(serve_consoles(host, port, started=started))
        except KeyboardInterrupt:
            pass
