"""bdr-agent's command line: parse, call the library, print. Nothing else lives here.

Exit codes: 0 ok, 1 failure, 2 usage, 3 damage found, 4 lock held. Errors are one line
on stderr, never a traceback. With --json the result is one JSON document on stdout
and progress events are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from agent.cli_restore import COMMANDS as _restore_commands
from agent.cli_restore import add_parsers as _add_restore_parsers
from agent.errors import AgentError, UsageError
from agent.memory import tune_malloc

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DAMAGE, EXIT_LOCKED = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + 2 lines)
        raise UsageError(f"{self.prog}: {message}")


def _open_store(args):
    from agent.store import Store

    return Store.open(_store_path(args))


def _store_path(args) -> Path:
    if not args.store:
        raise UsageError("no store given: use --store DIR or set BDR_STORE")
    return Path(args.store)


def _progress(args):
    from agent.progress import Progress

    return Progress.for_cli(args.json)


def _print_record(args, record) -> None:
    if args.json:
        print(json.dumps(record.to_json()))
    else:
        print(
            f"{record.id}  {record.size} bytes  +{record.stored_bytes} stored  "
            f"{record.chunks_new} new / {record.chunks_reused} reused / "
            f"{record.chunks_zero} zero chunks"
        )


# -- commands -----------------------------------------------------------------------------


def cmd_init(args) -> int:
    from agent.store import init_store

    store = init_store(
        _store_path(args),
        args.key_file,
        chunk_size=args.chunk_size,
        gc_grace=args.gc_grace,
        compression_level=args.compression_level,
    )
    out = {"store": str(store.root), "chunk_size": store.chunk_size, "key_file": args.key_file}
    print(json.dumps(out) if args.json else f"store ready at {store.root}")
    return EXIT_OK


def cmd_backup(args) -> int:
    from agent.backup import backup_volume, parse_time

    when = parse_time(args.at) if args.at else None
    store = _open_store(args)
    record = backup_volume(
        store, args.server, args.source, args.volume, when, progress=_progress(args)
    )
    _print_record(args, record)
    return EXIT_OK


def cmd_points(args) -> int:
    points = _open_store(args).list_points(args.server)
    if args.json:
        print(json.dumps([p.to_json() for p in points]))
    else:
        for p in points:
            print(f"{p.id}  {p.tier:<8}  {p.size} bytes  +{p.stored_bytes} stored")
    return EXIT_OK


def cmd_restore(args) -> int:
    from agent.restore import restore_point

    result = restore_point(_open_store(args), args.point, args.dest, progress=_progress(args))
    print(json.dumps(result) if args.json else f"restored {result['point']} to {result['dest']}")
    return EXIT_OK


def cmd_verify(args) -> int:
    from agent.verify import verify_points

    report = verify_points(_open_store(args), args.points or None, progress=_progress(args))
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for entry in report.damaged_points:
            offsets = ", ".join(str(c["offset"]) for c in entry["chunks"])
            print(f"DAMAGED {entry['id']}: {entry['index'] or 'chunks at offsets ' + offsets}")
        print(
            f"{report.points_checked} points, {report.chunks_checked} chunks checked: "
            + ("ok" if report.ok else f"{len(report.damaged_points)} damaged points")
        )
    return EXIT_OK if report.ok else EXIT_DAMAGE


def cmd_rollup(args) -> int:
    from agent.backup import parse_time
    from agent.rollup import rollup

    result = rollup(_open_store(args), parse_time(args.now) if args.now else None)
    if args.json:
        print(json.dumps(result))
    else:
        for s in result["servers"]:
            print(f"{s['server']}: kept {len(s['kept'])}, removed {len(s['removed'])}")
        print(f"gc: deleted {result['gc']['chunks_deleted']} chunks")
    return EXIT_OK


def cmd_gc(args) -> int:
    from agent.gc import collect_garbage

    result = collect_garbage(_open_store(args))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"gc: deleted {result['chunks_deleted']} chunks, freed {result['bytes_freed']} bytes")
    return EXIT_OK


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def cmd_policy(args) -> int:
    from dataclasses import asdict, replace

    store = _open_store(args)
    policy = store.load_policy(args.server)
    changes = {
        tier: getattr(args, tier)
        for tier in ("daily", "weekly", "monthly", "yearly")
        if getattr(args, tier) is not None
    }
    if args.intraday is not None:
        changes["intraday"] = None if args.intraday == "all" else _count(args.intraday)
    if changes:
        policy = replace(policy, **changes)
        store.save_policy(args.server, policy)
    data = asdict(policy)
    if args.json:
        print(json.dumps({"server": args.server, "policy": data}))
    else:
        print(
            f"{args.server}: "
            + ", ".join(f"{k} {'all' if v is None else v}" for k, v in data.items())
        )
    return EXIT_OK


def cmd_nbd(args) -> int:
    import signal

    from agent.nbd import NbdServer, nbd_uri

    server = NbdServer(_open_store(args), args.point, args.socket)

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
    from agent import vm

    store = _store_path(args)
    if args.vm_command == "start":
        record = vm.start_vm(
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
        _print_vm(args, vm.stop_vm(store, args.vm, force=args.force, wait=args.wait))
        return EXIT_OK
    if args.vm_command == "status":
        _print_vm(args, vm.read_vm(store, args.vm))
        return EXIT_OK
    if args.vm_command == "screenshot":
        Path(args.dest).write_bytes(vm.screenshot(store, args.vm))
        print(json.dumps({"vm": args.vm, "png": args.dest}) if args.json else args.dest)
        return EXIT_OK
    if args.vm_command == "run":
        _open_store(args)
        _print_vm(args, vm.supervise(store, args.vm, progress=_progress(args)))
        return EXIT_OK
    from agent.backup import parse_time
    from agent.vm_backup import backup_from_vm

    when = parse_time(args.at) if args.at else None
    _print_record(args, backup_from_vm(store, args.vm, taken_at=when, progress=_progress(args)))
    return EXIT_OK


def cmd_bootcheck(args) -> int:
    from agent.bootcheck import bootcheck

    result = bootcheck(
        _store_path(args),
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


def cmd_rpc(args) -> int:
    from agent.rpc import main as rpc_main

    return rpc_main(_store_path(args))


def cmd_run(args) -> int:
    from agent.scheduler import run_forever

    _open_store(args)  # refuse to start on a missing or unreadable store
    return run_forever(_store_path(args), interval=args.tick, once=args.once)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": cmd_init,
    "backup": cmd_backup,
    "points": cmd_points,
    "restore": cmd_restore,
    "verify": cmd_verify,
    "rollup": cmd_rollup,
    "gc": cmd_gc,
    "policy": cmd_policy,
    "rpc": cmd_rpc,
    "nbd": cmd_nbd,
    "vm": cmd_vm,
    "bootcheck": cmd_bootcheck,
    "run": cmd_run,
}
COMMANDS.update(_restore_commands)  # ls, find, cat, partitions, zip, restore-files, export, ...


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
    )
    parser = _Parser(prog="bdr-agent", description="Block-level image backup store.")
    parser.add_argument(
        "--store", default=os.environ.get("BDR_STORE"), help="store directory (env BDR_STORE)"
    )
    parser.add_argument("--json", action="store_true", help="JSON output")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("init", parents=[common], help="create a store")
    p.add_argument("--key-file", required=True, help="32-byte key file (created 0600 if absent)")
    p.add_argument("--chunk-size", type=_count, default=4 << 20, help="bytes (power of two)")
    p.add_argument("--gc-grace", type=_count, default=6 * 3600, help="seconds (default 6 h)")
    p.add_argument("--compression-level", type=int, default=1, help="zstd level (default 1)")

    p = sub.add_parser("backup", parents=[common], help="back up a volume")
    p.add_argument("server")
    p.add_argument("source")
    p.add_argument("--volume", default="disk0")
    p.add_argument("--at", help="the point's time, ISO-8601 (default now)")

    p = sub.add_parser("points", parents=[common], help="list recovery points")
    p.add_argument("server", nargs="?")

    p = sub.add_parser("restore", parents=[common], help="restore a point's image")
    p.add_argument("point")
    p.add_argument("dest")

    p = sub.add_parser("verify", parents=[common], help="authenticate points' chunks")
    p.add_argument("points", nargs="*")

    p = sub.add_parser("rollup", parents=[common], help="apply retention, then gc")
    p.add_argument("--now", help="ISO-8601 (default now)")

    sub.add_parser("gc", parents=[common], help="delete unreferenced chunks")

    p = sub.add_parser("policy", parents=[common], help="show or set a retention policy")
    p.add_argument("server")
    p.add_argument("--intraday", help="'all' or a count of today's points")
    for tier in ("daily", "weekly", "monthly", "yearly"):
        p.add_argument(f"--{tier}", type=_count)
    p = sub.add_parser("nbd", parents=[common], help="serve a point read-only over NBD")
    p.add_argument("point")
    p.add_argument("socket", help="Unix socket path to listen on")
    p.add_argument("--idle-exit", action="store_true", help="exit when the last client disconnects")
    _add_vm_parsers(sub, common)
    sub.add_parser("rpc", parents=[common], help="the portal's protocol on stdin/stdout (SSH)")
    p = sub.add_parser("run", parents=[common], help="the appliance's scheduler service")
    p.add_argument("--tick", type=float, default=20.0, help="seconds between checks")
    p.add_argument("--once", action="store_true", help="one check, then exit")
    _add_restore_parsers(sub, common)
    return parser


def _add_vm_parsers(sub, common) -> None:
    p = sub.add_parser("vm", parents=[common], help="boot recovery points as VMs")
    vm_sub = p.add_subparsers(dest="vm_command", required=True, parser_class=_Parser)
    p = vm_sub.add_parser("start", parents=[common], help="boot a point as a VM")
    p.add_argument("point")
    p.add_argument("--net", choices=("none", "isolated", "bridge"), default="isolated")
    p.add_argument("--cpus", type=_count)
    p.add_argument("--memory", type=_count, help="MiB")
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
    p.add_argument("--cpus", type=_count, default=1)
    p.add_argument("--memory", type=_count, default=1024, help="MiB")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bdr-agent`` console script; returns the exit code."""
    tune_malloc()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except AgentError as exc:
        _fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted; nothing was committed by an unfinished command")
        return EXIT_FAILURE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _fail(f"disk full{where}; nothing was committed and earlier points are intact")
        else:
            _fail(f"{exc.strerror or exc}{where}")
        return EXIT_FAILURE


def _fail(message: str) -> None:
    message = " ".join(message.split())
    if not message.startswith("bdr-agent"):
        message = f"bdr-agent: {message}"
    print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
