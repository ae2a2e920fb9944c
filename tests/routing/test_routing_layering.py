"""routing/ stands alone: it imports nothing from the app, the bot or the recordings."""

from __future__ import annotations

import ast
from pathlib import Path

import routing

FORBIDDEN = ("contact_center", "chatbot", "recordings")


def test_routing_imports_nothing_from_the_other_packages() -> None:
    root = Path(routing.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_every_lua_script_names_its_keys_and_argv() -> None:
    for path in (Path(routing.__file__).parent / "lua").glob("*.lua"):
        head = path.read_text(encoding="utf-8").split("\n\n")[0]
        assert "KEYS" in head and "ARGV" in head, path.name
