"""bdr-agent's command line: argument parsing and printing only (see ``agent.cli.main``)."""

from agent.cli.main import main

__all__ = ["main"]
