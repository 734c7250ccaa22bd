"""``bdr-agent vault ...``: the commands of a vault host (keyless; no --store)."""

from __future__ import annotations

import json

from agent.cli.common import EXIT_DAMAGE, EXIT_OK, Parser, count, progress_of, report_skipped


def cmd_vault_init(args) -> int:
    from agent.vault.store import init_vault

    vault = init_vault(
        args.dir, name=args.name, s3=args.s3, trash_days=args.trash_days, lock_days=args.lock_days
    )
    out = {
        "vault": str(args.dir),
        "name": vault.name,
        "backend": vault.backend.description,
        "trash_days": vault.trash_days,
        "object_lock_days": vault.backend.object_lock_days,
    }
    print(json.dumps(out) if args.json else f"vault {vault.name} ready at {args.dir}")
    return EXIT_OK


def cmd_vault_verify(args) -> int:
    from agent.vault.store import open_vault
    from agent.vault.verify import verify_vault

    report = verify_vault(open_vault(args.dir), progress=progress_of(args))
    if args.json:
        print(json.dumps(report))
    else:
        for blob in report["damaged_blobs"]:
            users = ", ".join(blob["points"]) or "no point"
            print(
                f"DAMAGED blob {blob['appliance']}/{blob['blob']}: {blob['reason']} "
                f"(needed by {users})"
            )
        for point in report["damaged_points"]:
            print(
                f"DAMAGED point {point['appliance']}/{point['point']}: "
                f"{len(point['problems'])} blob(s) missing or damaged"
            )
        state = "ok" if report["ok"] else f"{len(report['damaged_points'])} damaged points"
        print(f"{report['blobs_checked']} blobs, {report['bytes_checked']} bytes checked: {state}")
    return EXIT_OK if report["ok"] else EXIT_DAMAGE


def cmd_vault_serve(args) -> int:
    from agent.vault.serve import serve
    from agent.vault.store import open_vault

    return serve(open_vault(args.dir), only=args.appliance or "")


def cmd_vault_replicate(args) -> int:
    import datetime as dt
    from pathlib import Path

    from agent.vault.replicate import replicate_vault
    from agent.vault.store import open_vault
    from agent.vault.targets import parse_target, pin_host_key
    from agent.vault.throttle import Throttle, parse_rate, parse_windows, rate_at, zone

    vault = open_vault(args.dir)
    target = parse_target(args.target)
    if args.host_key and target.kind == "ssh":
        pin_host_key(Path(args.dir) / "known_hosts", target, args.host_key)
    limit, windows = parse_rate(args.limit), parse_windows(args.windows)
    progress = progress_of(args)
    throttle = Throttle(
        lambda: rate_at(windows, limit, dt.datetime.now(dt.UTC), zone("UTC")), on_wait=progress.beat
    )
    result = replicate_vault(
        vault,
        target,
        pace=throttle.take,
        progress=progress,
        streams=args.streams,
        channels=args.channels,
    )
    summary = [
        f"{app['appliance']}: {app['points_sent']} point(s) sent, "
        f"{app['points_there']} on {result['target_vault']}"
        for app in result["appliances"]
    ]
    return report_skipped(args, result, "SENT", summary)


def cmd_vault_retention(args) -> int:
    import datetime as dt

    from agent.store.backup import parse_time
    from agent.vault.retention import apply_retention
    from agent.vault.store import open_vault

    now = parse_time(args.now) if args.now else dt.datetime.now(dt.UTC)
    report = apply_retention(open_vault(args.dir), now)
    if args.json:
        print(json.dumps(report))
        return EXIT_OK
    for app in report["appliances"]:
        print(
            f"{app['appliance']}: kept {len(app['kept'])}, trashed {len(app['trashed'])}, "
            f"purged {len(app['purged_points'])} ({app['bytes_freed']} bytes freed)"
            + (f"; {app['purge_postponed']}" if app.get("purge_postponed") else "")
        )
    return EXIT_OK


VAULT_COMMANDS = {
    "init": cmd_vault_init,
    "verify": cmd_vault_verify,
    "serve": cmd_vault_serve,
    "replicate": cmd_vault_replicate,
    "retention": cmd_vault_retention,
}


def cmd_vault(args) -> int:
    return VAULT_COMMANDS[args.vault_command](args)


COMMANDS = {"vault": cmd_vault}


def add_parsers(sub, common) -> None:
    """Register ``vault`` and its subcommands on the CLI's subparsers."""
    p = sub.add_parser("vault", parents=[common], help="the off-site vault (keyless)")
    vault_sub = p.add_subparsers(dest="vault_command", required=True, parser_class=Parser)
    p = vault_sub.add_parser("init", parents=[common], help="create a vault")
    p.add_argument("dir")
    p.add_argument("--name", help="this vault's name (default: the host name)")
    p.add_argument("--s3", help="keep the blobs in s3://bucket/prefix (boto3; env credentials)")
    p.add_argument("--trash-days", type=count, default=14, help="days deletions stay in trash")
    p.add_argument(
        "--lock-days",
        type=count,
        default=0,
        help="S3 Object Lock: days each blob is locked (default: the trash days)",
    )
    p = vault_sub.add_parser("verify", parents=[common], help="check every blob (exit 3: damage)")
    p.add_argument("dir")
    p = vault_sub.add_parser("serve", parents=[common], help="the protocol on stdin/stdout (SSH)")
    p.add_argument("dir", help="the vault directory, or s3://bucket/prefix")
    p.add_argument("--appliance", help="allow only this appliance's namespace")
    p = vault_sub.add_parser("replicate", parents=[common], help="send points on to a vault")
    p.add_argument("dir")
    p.add_argument("target", help="a vault directory or ssh://user@host[:port]/DIR")
    p.add_argument("--limit", help="bytes/s (512K, 4M, 20mbit)")
    p.add_argument("--windows", help="'mon-fri 08:00-18:00 20mbit; * * off' (UTC)")
    p.add_argument("--host-key", help="pin the target host's key ('ssh-ed25519 AAAA...')")
    p.add_argument("--streams", type=count, help="connections (default: by the round trip)")
    p.add_argument("--channels", type=count, help="streams per SSH connection (default 8)")
    p = vault_sub.add_parser("retention", parents=[common], help="apply the off-site policies")
    p.add_argument("dir")
    p.add_argument("--now", help="ISO-8601 (default now)")
