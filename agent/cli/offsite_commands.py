"""The appliance's off-site commands: replicate, offsite, repair, seed."""

from __future__ import annotations

import json

from agent.cli.common import (
    EXIT_DAMAGE,
    EXIT_OK,
    count,
    open_store,
    progress_of,
    report_skipped,
    store_path,
)


def cmd_replicate(args) -> int:
    from agent.service.offsite import run_replicate

    params = {
        "target": args.target,
        "host_key": args.host_key,
        "limit": args.limit,
        "windows": args.windows,
        "order": args.order,
        "servers": args.server,
        "streams": args.streams,
        "channels": args.channels,
    }
    result = run_replicate(store_path(args), params, progress_of(args))
    summary = (
        f"{result['points_sent']} point(s), {result['blobs_sent']} blob(s), "
        f"{result['bytes_sent']} bytes sent to {result['vault']}; "
        f"{result['points_on_vault']}/{result['points_local']} points on the vault"
    )
    return report_skipped(args, result, "SENT", [summary])


def cmd_offsite(args) -> int:
    from agent.service.offsite import status

    result = status(store_path(args), args.target)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    for point in result["points"]:
        print(f"{point['id']}  {', '.join(point['copies'])}")
    eta = result["eta_seconds"]
    print(
        f"vault {result['vault'] or '?'}: {result['pending_points']} point(s) waiting, "
        f"{result['backlog_bytes']} bytes, rate {result['rate'] or '?'} B/s, "
        f"ETA {'?' if eta is None else f'{eta:.0f} s'}"
    )
    return EXIT_OK


def cmd_repair(args) -> int:
    from agent.offsite.repair import repair
    from agent.offsite.replicate import vault_files
    from agent.service.offsite import appliance, resolve_target

    root = store_path(args)
    store = open_store(args)
    target = resolve_target(root, args.source, args.host_key)
    known_hosts, identity = vault_files(root)
    result = repair(
        store,
        target,
        app=appliance(root),
        known_hosts=known_hosts,
        identity=identity,
        progress=progress_of(args),
    )
    if args.json:
        print(json.dumps(result))
    else:
        for entry in result["remaining"]:
            print(
                f"NOT REPAIRED chunk {entry['chunk']}: {entry['reason']} "
                f"(needed by {', '.join(entry['points']) or 'no point'})"
            )
        print(
            f"{len(result['repaired'])} chunk(s) repaired, "
            f"{len(result['points_healed'])} point(s) healed, "
            f"{len(result['points_damaged'])} still damaged"
        )
    return EXIT_DAMAGE if result["remaining"] else EXIT_OK


def cmd_seed(args) -> int:
    from pathlib import Path

    from agent.errors import UsageError
    from agent.offsite.replicate import vault_files
    from agent.offsite.seed import seed
    from agent.vault.targets import connect, parse_target, pin_host_key

    root = store_path(args)
    target = parse_target(args.source)
    known_hosts = identity = None
    if target.kind == "ssh":  # the vault host must already know this store's key
        if not (root / "config.json").exists():
            raise UsageError(
                f"seeding over SSH needs the store first: bdr-agent --store {root} init "
                "--key-file KEY, then authorise its key (appliance/vault_ed25519.pub) on the vault"
            )
        known_hosts, identity = vault_files(root)
        if args.host_key:
            pin_host_key(known_hosts, target, args.host_key)
    with connect(target, known_hosts, identity) as conn:
        result = seed(
            root, Path(args.key_file), conn, app=args.appliance, progress=progress_of(args)
        )
    summary = (
        f"{result['points_seeded']} point(s) seeded from {result['vault']} "
        f"({result['bytes_fetched']} bytes); {result['points_in_store']} in the store"
    )
    return report_skipped(args, result, "SEEDED", [summary])


COMMANDS = {
    "replicate": cmd_replicate,
    "offsite": cmd_offsite,
    "repair": cmd_repair,
    "seed": cmd_seed,
}


def add_parsers(sub, common) -> None:
    """Register the off-site commands on the CLI's subparsers."""
    p = sub.add_parser("replicate", parents=[common], help="send points to a vault")
    p.add_argument("target", help="vault directory, ssh://user@host[:port]/DIR or s3://bucket/p")
    p.add_argument("--server", action="append", help="only this server (repeatable)")
    p.add_argument(
        "--order",
        choices=("newest", "oldest"),
        help="which points go first (default: the settings', newest)",
    )
    p.add_argument("--host-key", help="pin the vault host's key ('ssh-ed25519 AAAA...')")
    p.add_argument("--limit", help="bytes/s (512K, 4M, 20mbit; default: the settings)")
    p.add_argument("--windows", help="'mon-fri 08:00-18:00 512kbit; * * 20mbit' (first match)")
    p.add_argument("--streams", type=count, help="connections (default: by the round trip)")
    p.add_argument("--channels", type=count, help="streams per SSH connection (default 8)")
    p = sub.add_parser("repair", parents=[common], help="fetch damaged chunks from a vault")
    p.add_argument("--from", dest="source", required=True, help="the vault (TARGET)")
    p.add_argument("--host-key", help="pin the vault host's key ('ssh-ed25519 AAAA...')")
    p = sub.add_parser("seed", parents=[common], help="rebuild a store from a vault")
    p.add_argument("--from", dest="source", required=True, help="the vault (TARGET)")
    p.add_argument("--key-file", required=True, help="the customer's 32-byte storage key")
    p.add_argument("--appliance", help="whose points (default: the vault's only appliance)")
    p.add_argument("--host-key", help="pin the vault host's key ('ssh-ed25519 AAAA...')")
    p = sub.add_parser("offsite", parents=[common], help="off-site copies, backlog, rate, ETA")
    p.add_argument("target", nargs="?", help="ask this vault first (default: the last state)")
