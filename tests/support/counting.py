"""Count what an action costs the appliance: rpc sessions opened, and agent processes started.

Sessions: every ``appliances.transport.open_stream`` call (one SSH session, or one local
``bdr-agent rpc`` process). Processes: every Python process the agent starts (the rpc itself,
a job's detached runner and the CLI it runs, a CLI the rpc runs for an answer), recorded by a
``sitecustomize`` put on the PYTHONPATH the local transport's processes inherit.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from appliances import transport

HOOK = Path(__file__).parent / "process_log"


@dataclass
class Usage:
    log: Path
    sessions: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def processes(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if " -m agent" in line]


@contextlib.contextmanager
def appliance_usage(monkeypatch, tmp_path: Path):
    """Within the block, count sessions and agent processes (local transport only)."""
    usage = Usage(log=tmp_path / "processes.log")
    usage.log.write_text("")
    real_open = transport.open_stream

    def counting_open(appliance):
        usage.sessions += 1
        return real_open(appliance)

    monkeypatch.setattr(transport, "open_stream", counting_open)
    monkeypatch.setenv("BDR_TEST_PROCESS_LOG", str(usage.log))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")]))
    )
    try:
        yield usage
    finally:
        monkeypatch.setattr(transport, "open_stream", real_open)
        monkeypatch.delenv("BDR_TEST_PROCESS_LOG")
