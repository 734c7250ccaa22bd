"""The appliance's off-site commands: replicate, offsite, repair, seed."""

from __future__ import annotations

import json

from agent.cli.common import EXIT_DAMAGE, EXIT_OK, progress_of, store_path


def cmd_replicate(args) -> int:
    from agent.service.offsite import run_replicate

    params = {
        "target": args.target,
        "host_key": args.host_key,
        "limit": args.limit,
        "windows": args.windows,
        "order": args.order,
        "servers": args.server,
    }
    result = run_replicate(store_path(args), params, progress_of(args))
    if args.json:
        print(json.dumps(result))
    else:
        for skipped in result["skipped"]:
            print(f"NOT SENT {skipped['point']}: {skipped['reason']}")
        print(
            f"{result['points_sent']} point(s), {result['blobs_sent']} blob(s), "
            f"{result['bytes_sent']} bytes sent to {result['vault']}; "
            f"{result['points_on_vault']}/{result['points_local']} points on the vault"
        )
    return EXIT_DAMAGE if result["skipped"] else EXIT_OK


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


COMMANDS = {"replicate": cmd_replicate, "offsite": cmd_offsite}


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
    p = sub.add_parser("offsite", parents=[common], help="off-site copies, backlog, rate, ETA")
    p.add_argument("target", nargs="?", help="ask this vault first (default: the last state)")
