"""The virtualization commands of bdr-agent's CLI: ``nbd``, ``vm ...``, ``bootcheck``."""

from __future__ import annotations

import json
from pathlib import Path

from agent.cli.common import (
    EXIT_DAMAGE,
    EXIT_FAILURE,
    EXIT_OK,
    Parser,
    count,
    open_store,
    print_record,
    progress_of,
    store_path,
)


def cmd_nbd(args) -> int:
    import signal

    from agent.restore.nbd import NbdServer, nbd_uri

    server = NbdServer(open_store(args), args.point, args.socket)

    def stop(signum, frame):
        server.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready = {"point": args.point, "socket": str(server.socket_path), "size": server.size}
    ready["uri"] = nbd_uri(server.socket_path)
    # Printed once the socket listens: a caller waits for this line, then connects.
    print(json.dumps(ready) if args.json else f"serving {args.point} on {ready['uri']}", flush=True)
    server.serve_forever(on_idle=(lambda: True) if args.idle_exit else None)
    return EXIT_OK


def _print_vm(args, vm: dict) -> None:
    if args.json:
        print(json.dumps(vm))
    else:
        extra = f"  {vm['error']}" if vm.get("error") else ""
        print(f"{vm['id']}  {vm['state']:<8}  {vm['point']}  net {vm['net']}{extra}")


def cmd_vm(args) -> int:
    from agent.vm import machines as vm

    store = store_path(args)
    if args.vm_command == "start":
        from agent.service.vms import start_vm

        record = start_vm(
            store,
            args.point,
            net=args.net,
            cpus=args.cpus,
            memory_mib=args.memory,
            mac=args.mac or "",
            ref=args.ref or "",
            wait=args.wait,
        )
        _print_vm(args, record)
        return EXIT_OK if record["state"] in ("starting", "running") else EXIT_FAILURE
    if args.vm_command == "list":
        vms = vm.list_vms(store, args.server, active_only=args.active)
        if args.json:
            print(json.dumps(vms))
        for record in [] if args.json else vms:
            _print_vm(args, record)
        return EXIT_OK
    if args.vm_command == "stop":
        from agent.service.vms import stop_vm

        _print_vm(args, stop_vm(store, args.vm, force=args.force, wait=args.wait))
        return EXIT_OK
    if args.vm_command == "status":
        _print_vm(args, vm.read_vm(store, args.vm))
        return EXIT_OK
    if args.vm_command == "screenshot":
        Path(args.dest).write_bytes(vm.screenshot(store, args.vm))
        print(json.dumps({"vm": args.vm, "png": args.dest}) if args.json else args.dest)
        return EXIT_OK
    if args.vm_command == "run":
        open_store(args)
        _print_vm(args, vm.supervise(store, args.vm, progress=progress_of(args)))
        return EXIT_OK
    from agent.store.backup import parse_time
    from agent.vm.backup import backup_from_vm

    when = parse_time(args.at) if args.at else None
    print_record(args, backup_from_vm(store, args.vm, taken_at=when, progress=progress_of(args)))
    return EXIT_OK


def cmd_bootcheck(args) -> int:
    from agent.vm.bootcheck import bootcheck

    result = bootcheck(
        store_path(args),
        args.point,
        marker=args.marker,
        timeout=args.timeout,
        cpus=args.cpus,
        memory_mib=args.memory,
    )
    if args.json:
        print(json.dumps(result))
    elif result["ok"]:
        print(f"{result['point']} booted in {result['boot_seconds']} s ({result['screenshot']})")
    else:
        print(f"{result['point']} FAILED to boot: {result['reason']}")
    return EXIT_OK if result["ok"] else EXIT_DAMAGE


COMMANDS = {"nbd": cmd_nbd, "vm": cmd_vm, "bootcheck": cmd_bootcheck}


def add_parsers(sub, common) -> None:
    """Register ``nbd``, ``vm`` and ``bootcheck`` on the CLI's subparsers."""
    p = sub.add_parser("vm", parents=[common], help="boot recovery points as VMs")
    vm_sub = p.add_subparsers(dest="vm_command", required=True, parser_class=Parser)
    p = vm_sub.add_parser("start", parents=[common], help="boot a point as a VM")
    p.add_argument("point")
    p.add_argument("--net", choices=("none", "isolated", "bridge"), default="isolated")
    p.add_argument("--cpus", type=count)
    p.add_argument("--memory", type=count, help="MiB")
    p.add_argument("--mac", help="the protected server's MAC address")
    p.add_argument("--ref", help="idempotency key: a second start with it returns the first VM")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for qemu to run")
    p = vm_sub.add_parser("list", parents=[common], help="the appliance's VMs")
    p.add_argument("server", nargs="?")
    p.add_argument("--active", action="store_true")
    p = vm_sub.add_parser("stop", parents=[common], help="shut down (or --force: power off)")
    p.add_argument("vm")
    p.add_argument("--force", action="store_true", help="power off at once")
    p.add_argument("--wait", type=float, default=60.0)
    p = vm_sub.add_parser("status", parents=[common], help="one VM's record")
    p.add_argument("vm")
    p = vm_sub.add_parser("screenshot", parents=[common], help="the VM's screen as PNG")
    p.add_argument("vm")
    p.add_argument("dest")
    p = vm_sub.add_parser("run", parents=[common], help="(the virtualize job) supervise a VM")
    p.add_argument("vm")
    p = vm_sub.add_parser("backup", parents=[common], help="back up a running VM's disk")
    p.add_argument("vm")
    p.add_argument("--at", help="the point's time, ISO-8601 (default now)")
    p = sub.add_parser("bootcheck", parents=[common], help="boot-verify a point (exit 3: fail)")
    p.add_argument("point")
    p.add_argument("--marker", help="text on the serial port that means booted")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds")
    p.add_argument("--cpus", type=count, default=1)
    p.add_argument("--memory", type=count, default=1024, help="MiB")
