"""The file-restore, export and bare-metal commands of bdr-agent's CLI (see main.py).

``ls``, ``find``, ``cat`` and ``export`` are DESIGN.md's contract; ``partitions``, ``zip``,
``restore-files`` and ``baremetal`` are this agent's additions. Refused paths (``..``,
symlinks out of the restore folder, folders outside the confinement's export roots) are
appended to ``<store>/appliance/refused-paths.log``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from agent.cli.common import EXIT_OK, count, open_store, progress_of, store_path


def _fs(args, partition=None):
    from agent.restore.files import open_point_filesystem

    return open_point_filesystem(open_store(args), args.point, partition)


def _guard(args, fn):
    from agent.restore.refused_paths import refused_paths_logged

    paths = getattr(args, "paths", None) or [getattr(args, "path", "")]
    with refused_paths_logged(store_path(args), args.command, args.point, paths):
        return fn()


def _when(ts) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def cmd_ls(args) -> int:
    def run():
        fs = _fs(args, args.partition)
        entries = fs.ls(args.path)
        if args.json:
            doc = {"point": args.point, "partition": fs.partition.number, "path": args.path}
            print(json.dumps({**doc, "filesystem": fs.kind, "entries": entries}))
        else:
            for e in entries:
                print(f"{e['type']:<7} {e['size']:>14} {_when(e['mtime'])}  {e['name']}")
        return EXIT_OK

    return _guard(args, run)


def cmd_find(args) -> int:
    from agent.restore.files import open_point_filesystem
    from agent.restore.filesystems import point_partitions

    store = open_store(args)
    if args.partition is not None:
        numbers = [args.partition]
    else:  # the whole point: every partition holding a readable filesystem
        from agent.restore.reader import PointReader

        with PointReader(store, args.point) as reader:
            numbers = [p.number for p in point_partitions(reader) if p.filesystem]
    matches: list[dict] = []
    for number in numbers:
        fs = open_point_filesystem(store, args.point, number)
        for entry in fs.find(args.glob, limit=args.limit - len(matches)):
            matches.append({**entry, "partition": number})
        if len(matches) >= args.limit:
            break
    if args.json:
        truncated = len(matches) >= args.limit
        print(json.dumps({"point": args.point, "glob": args.glob, "matches": matches,
                          "truncated": truncated}))  # fmt: skip
    else:
        for e in matches:
            print(f"{e['partition']}:{e['path']}")
    return EXIT_OK


def cmd_cat(args) -> int:
    from agent.restore.files import copy_file

    def run():
        fs = _fs(args, args.partition)
        copy_file(fs, args.path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return EXIT_OK

    return _guard(args, run)


def cmd_partitions(args) -> int:
    from agent.restore.filesystems import point_partitions
    from agent.restore.reader import PointReader

    with PointReader(open_store(args), args.point) as reader:
        parts = [p.to_json() for p in point_partitions(reader)]
    if args.json:
        print(json.dumps({"point": args.point, "partitions": parts}))
    else:
        for p in parts:
            print(
                f"{p['number']}  {p['filesystem'] or '-':<8} {p['length']:>14}  {p['description']}"
            )
    return EXIT_OK


def cmd_zip(args) -> int:
    from agent.restore.files import zip_stream

    def run():
        fs = _fs(args, args.partition)
        for piece in zip_stream(fs, args.paths):
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()
        return EXIT_OK

    return _guard(args, run)


def cmd_restore_files(args) -> int:
    from agent.confinement import check_write_folder
    from agent.restore.files import restore_files

    def run():
        check_write_folder(store_path(args), args.dest)
        fs = _fs(args, args.partition)
        result = restore_files(
            fs, args.paths, args.dest, overwrite=args.overwrite, progress=progress_of(args)
        )
        result["point"] = args.point
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"restored {result['written']} files ({result['bytes']} bytes) to "
                f"{result['dest']}; {result['skipped']} existing files kept"
            )
        return EXIT_OK

    return _guard(args, run)


def cmd_export(args) -> int:
    from agent.confinement import check_write_folder
    from agent.restore.export import export_point

    check_write_folder(store_path(args), args.dest, "export folder", export=True)
    result = export_point(
        open_store(args), args.point, args.dest, args.format, progress=progress_of(args)
    )
    print(json.dumps(result) if args.json else f"exported {args.point} to {result['dest']}")
    return EXIT_OK


def cmd_baremetal(args) -> int:
    from agent.confinement import check_target
    from agent.restore.export import send_point

    check_target(store_path(args), args.target, args.port)
    result = send_point(
        open_store(args),
        args.point,
        args.target,
        port=args.port,
        identity=args.identity,
        known_hosts=args.known_hosts,
        dest=args.dest,
        progress=progress_of(args),
    )
    print(json.dumps(result) if args.json else f"sent {args.point}: sha256 {result['sha256']}")
    return EXIT_OK


COMMANDS = {
    "ls": cmd_ls,
    "find": cmd_find,
    "cat": cmd_cat,
    "partitions": cmd_partitions,
    "zip": cmd_zip,
    "restore-files": cmd_restore_files,
    "export": cmd_export,
    "baremetal": cmd_baremetal,
}


def add_parsers(sub, common) -> None:
    """Register the commands above on the CLI's subparsers."""
    p = sub.add_parser("ls", parents=[common], help="list a directory inside a point")
    p.add_argument("point")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("--partition", type=count)

    p = sub.add_parser("find", parents=[common], help="filenames matching a glob, whole point")
    p.add_argument("point")
    p.add_argument("glob")
    p.add_argument("--partition", type=count)
    p.add_argument("--limit", type=count, default=1000)

    p = sub.add_parser("cat", parents=[common], help="a file's bytes to stdout")
    p.add_argument("point")
    p.add_argument("path")
    p.add_argument("--partition", type=count)

    p = sub.add_parser("partitions", parents=[common], help="a point's partitions")
    p.add_argument("point")

    p = sub.add_parser("zip", parents=[common], help="files and folders as a zip to stdout")
    p.add_argument("point")
    p.add_argument("paths", nargs="+")
    p.add_argument("--partition", type=count)

    p = sub.add_parser("restore-files", parents=[common], help="copy files out into a folder")
    p.add_argument("point")
    p.add_argument("dest")
    p.add_argument("paths", nargs="+")
    p.add_argument("--partition", type=count)
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")

    p = sub.add_parser("export", parents=[common], help="a point as a disk image file")
    p.add_argument("point")
    p.add_argument("dest")
    p.add_argument("--format", choices=("raw", "qcow2", "vmdk", "vhdx"), default="raw")

    p = sub.add_parser("baremetal", parents=[common], help="stream a point to a target over SSH")
    p.add_argument("point")
    p.add_argument("target", help="user@host of the machine running agent.receiver")
    p.add_argument("--port", type=count, default=22)
    p.add_argument("--identity", required=True, help="SSH private key file")
    p.add_argument("--known-hosts", required=True, help="known_hosts file pinning the target")
    p.add_argument("--dest", default="", help="device or file on the target")
