"""The appliance's off-site commands: replicate, offsite, repair, seed."""

from __future__ import annotations

import json

from agent.cli.common import EXIT_DAMAGE, EXIT_OK, open_store, progress_of, store_path


def _target(args):
    from agent.offsite.replicate import vault_files
    from agent.vault.targets import parse_target, pin_host_key

    target = parse_target(args.target)
    if getattr(args, "host_key", None) and target.kind == "ssh":
        pin_host_key(vault_files(store_path(args))[0], target, args.host_key)
    return target


def _settings(args) -> dict:
    from agent.service import appliance_config

    return appliance_config.load_settings(store_path(args))


def _appliance(args) -> str:
    from agent.offsite.replicate import appliance_id

    return appliance_id(store_path(args), _settings(args).get("serial", ""))


def throttle_of(args, progress):
    """The token bucket of ``--limit``/``--windows``, or of the settings, re-read each second."""
    from agent.service.appliance_config import offsite_rate
    from agent.vault.throttle import Throttle, parse_rate, parse_windows

    parse_rate(args.limit)  # a bad flag is a usage error now, not a silent default later
    parse_windows(args.windows)
    return Throttle(offsite_rate(store_path(args), args.limit, args.windows), on_wait=progress.beat)


def cmd_replicate(args) -> int:
    from agent.offsite.replicate import replicate

    store = open_store(args)
    progress = progress_of(args)
    result = replicate(
        store,
        _target(args),
        app=_appliance(args),
        servers=args.server or None,
        order=args.order or _settings(args)["offsite_order"],
        progress=progress,
        pace=throttle_of(args, progress).take,
    )
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


COMMANDS = {"replicate": cmd_replicate}


def add_parsers(sub, common) -> None:
    """Register the off-site commands on the CLI's subparsers."""
    p = sub.add_parser("replicate", parents=[common], help="send points to a vault")
    p.add_argument("target", help="vault directory, ssh://user@host[:port]/DIR or s3://bucket/p")
    p.add_argument("--server", action="append", help="only this server (repeatable)")
    p.add_argument(
        "--order",
        choices=("newest", "oldest"),
        default="newest",
        help="which points go first (default newest)",
    )
    p.add_argument("--host-key", help="pin the vault host's key ('ssh-ed25519 AAAA...')")
    p.add_argument("--limit", help="bytes/s (512K, 4M, 20mbit; default: the settings)")
    p.add_argument("--windows", help="'mon-fri 08:00-18:00 512kbit; * * 20mbit' (first match)")
