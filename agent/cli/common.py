"""What every CLI command module shares: the parser class, the store and progress of the
command line, printing a point record, and the exit codes (DESIGN.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.errors import UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DAMAGE, EXIT_LOCKED = 0, 1, 2, 3, 4


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2)."""

    def error(self, message: str):  # one line, exit 2 (argparse prints usage + 2 lines)
        raise UsageError(f"{self.prog}: {message}")


def open_store(args):
    from agent.store.datastore import Store

    return Store.open(store_path(args))


def store_path(args) -> Path:
    if not args.store:
        raise UsageError("no store given: use --store DIR or set BDR_STORE")
    return Path(args.store)


def progress_of(args):
    from agent.store.progress import Progress

    return Progress.for_cli(args.json)


def print_record(args, record) -> None:
    if args.json:
        print(json.dumps(record.to_json()))
    else:
        print(
            f"{record.id}  {record.size} bytes  +{record.stored_bytes} stored  "
            f"{record.chunks_new} new / {record.chunks_reused} reused / "
            f"{record.chunks_zero} zero chunks"
        )


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def report_skipped(args, result: dict, verb: str, summary: list[str]) -> int:
    """Print an off-site command's result (JSON, or a line per point it could not handle
    and the summary lines); exit 3 when some point was skipped."""
    if args.json:
        print(json.dumps(result))
    else:
        for skipped in result["skipped"]:
            print(f"NOT {verb} {skipped['point']}: {skipped['reason']}")
        print("\n".join(summary))
    return EXIT_DAMAGE if result["skipped"] else EXIT_OK
