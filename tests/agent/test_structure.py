"""The agent's shape: no import circles, each subpackage importable alone (file and function
lengths are checked for the whole code base in tests/test_code_shape.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "agent"
SUBPACKAGES = ("store", "restore", "vm", "vault", "offsite", "service", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(AGENT.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The agent modules ``path`` imports (at any depth: lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from agent.vm import machines" imports the module agent.vm.machines;
            # "from agent.store.keys import StorageKey" the module agent.store.keys
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name.startswith("agent"):
                found.add(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_inside_the_agent():
    modules = _modules()
    known = set(modules)
    # A package's __init__ is not an edge of its own submodules' imports of siblings.
    graph = {name: _imports(path, known) - {name} for name, path in modules.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_each_subpackage_imports_alone(package):
    names = [n for n in _modules() if n.startswith(f"agent.{package}")]
    code = "; ".join(f"import {n}" for n in names)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_the_receiver_needs_only_the_standard_library():
    # It runs on the bare-metal target, which has Python but not the agent's dependencies.
    code = (
        "import sys, agent.receiver, agent.restore.receiver; "
        "bad = [m for m in ('cryptography', 'zstandard', 'pytsk3') if m in sys.modules]; "
        "sys.exit(bool(bad))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
