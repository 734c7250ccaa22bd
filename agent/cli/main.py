"""bdr-agent's command line: parse, call the library, print. Nothing else lives here.

Exit codes: 0 ok, 1 failure, 2 usage, 3 damage found, 4 lock held. Errors are one line
on stderr, never a traceback. With --json the result is one JSON document on stdout
and progress events are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from agent.cli import offsite_commands, restore_commands, vault_commands, vm_commands
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
from agent.errors import AgentError, failure_line
from agent.store.memory import tune_malloc

# -- commands -----------------------------------------------------------------------------


def cmd_init(args) -> int:
    from agent.store.datastore import init_store

    store = init_store(
        store_path(args),
        args.key_file,
        chunk_size=args.chunk_size,
        gc_grace=args.gc_grace,
        compression_level=args.compression_level,
        store_format=args.format,
        block_size=args.block_size,
    )
    out = {
        "store": str(store.root),
        "format": store.format,
        "chunk_size": store.chunk_size,
        "key_file": args.key_file,
    }
    print(json.dumps(out) if args.json else f"store ready at {store.root}")
    return EXIT_OK


def cmd_backup(args) -> int:
    from agent.store.backup import backup_volume, parse_time

    when = parse_time(args.at) if args.at else None
    store = open_store(args)
    record = backup_volume(
        store, args.server, args.source, args.volume, when, progress=progress_of(args)
    )
    print_record(args, record)
    return EXIT_OK


def cmd_points(args) -> int:
    points = open_store(args).list_points(args.server)
    if args.json:
        print(json.dumps([p.to_json() for p in points]))
    else:
        for p in points:
            print(f"{p.id}  {p.tier:<8}  {p.size} bytes  +{p.stored_bytes} stored")
    return EXIT_OK


def cmd_restore(args) -> int:
    from agent.restore.reader import restore_point

    result = restore_point(open_store(args), args.point, args.dest, progress=progress_of(args))
    print(json.dumps(result) if args.json else f"restored {result['point']} to {result['dest']}")
    return EXIT_OK


def cmd_verify(args) -> int:
    from agent.store.verify import verify_points

    report = verify_points(open_store(args), args.points or None, progress=progress_of(args))
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
    from agent.store.backup import parse_time
    from agent.store.rollup import rollup

    result = rollup(open_store(args), parse_time(args.now) if args.now else None)
    if args.json:
        print(json.dumps(result))
    else:
        for s in result["servers"]:
            print(f"{s['server']}: kept {len(s['kept'])}, removed {len(s['removed'])}")
        print(f"gc: deleted {result['gc']['chunks_deleted']} chunks")
    return EXIT_OK


def cmd_gc(args) -> int:
    from agent.store.gc import collect_garbage

    result = collect_garbage(open_store(args))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"gc: deleted {result['chunks_deleted']} chunks, freed {result['bytes_freed']} bytes")
    return EXIT_OK


def cmd_policy(args) -> int:
    from dataclasses import asdict, replace

    store = open_store(args)
    policy = store.load_policy(args.server)
    changes = {
        tier: getattr(args, tier)
        for tier in ("daily", "weekly", "monthly", "yearly")
        if getattr(args, tier) is not None
    }
    if args.intraday is not None:
        changes["intraday"] = None if args.intraday == "all" else count(args.intraday)
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


def cmd_rpc(args) -> int:
    from agent.service.rpc import main as rpc_main

    return rpc_main(store_path(args))


def cmd_run(args) -> int:
    from agent.service.scheduler import run_forever

    open_store(args)  # refuse to start on a missing or unreadable store
    return run_forever(store_path(args), interval=args.tick, once=args.once)


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
    "run": cmd_run,
}
COMMANDS.update(vm_commands.COMMANDS)  # nbd, vm, bootcheck
COMMANDS.update(restore_commands.COMMANDS)  # ls, find, cat, partitions, zip, restore-files, ...
COMMANDS.update(vault_commands.COMMANDS)  # vault init, serve, verify, replicate, retention
COMMANDS.update(offsite_commands.COMMANDS)  # replicate, offsite, repair, seed


def _add_init_parser(sub, common) -> None:
    p = sub.add_parser("init", parents=[common], help="create a store")
    p.add_argument("--key-file", required=True, help="32-byte key file (created 0600 if absent)")
    p.add_argument("--chunk-size", type=count, default=4 << 20, help="bytes (power of two)")
    p.add_argument("--gc-grace", type=count, default=6 * 3600, help="seconds (default 6 h)")
    p.add_argument("--compression-level", type=int, help="zstd level (default 3; format 1: 1)")
    p.add_argument(
        "--format", type=int, choices=(1, 2), default=2,
        help="2: changed chunks stored as deltas of their changed blocks (default); 1: whole",
    )  # fmt: skip
    p.add_argument("--block-size", type=count, help="bytes per block (default chunk size / 64)")


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
    )
    parser = Parser(prog="bdr-agent", description="Block-level image backup store.")
    parser.add_argument(
        "--store", default=os.environ.get("BDR_STORE"), help="store directory (env BDR_STORE)"
    )
    parser.add_argument("--json", action="store_true", help="JSON output")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    _add_init_parser(sub, common)

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
        p.add_argument(f"--{tier}", type=count)
    p = sub.add_parser("nbd", parents=[common], help="serve a point read-only over NBD")
    p.add_argument("point")
    p.add_argument("socket", help="Unix socket path to listen on")
    p.add_argument("--idle-exit", action="store_true", help="exit when the last client disconnects")
    vm_commands.add_parsers(sub, common)
    sub.add_parser("rpc", parents=[common], help="the portal's protocol on stdin/stdout (SSH)")
    p = sub.add_parser("run", parents=[common], help="the appliance's scheduler service")
    p.add_argument("--tick", type=float, default=20.0, help="seconds between checks")
    p.add_argument("--once", action="store_true", help="one check, then exit")
    restore_commands.add_parsers(sub, common)
    vault_commands.add_parsers(sub, common)
    offsite_commands.add_parsers(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bdr-agent`` console script; returns the exit code."""
    tune_malloc()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (AgentError, KeyboardInterrupt, OSError) as exc:
        message, code = failure_line(exc) or (str(exc), EXIT_FAILURE)
        message = " ".join(message.split())
        if not message.startswith("bdr-agent"):
            message = f"bdr-agent: {message}"
        print(message, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
