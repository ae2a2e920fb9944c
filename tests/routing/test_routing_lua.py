"""Every Lua script of the router says which keys and arguments it takes.

(That routing/ imports nothing of the other packages is an import-linter contract in
pyproject.toml, run by ``make lint``.)"""

from __future__ import annotations

from pathlib import Path

import routing


def test_every_lua_script_names_its_keys_and_argv() -> None:
    for path in (Path(routing.__file__).parent / "lua").glob("*.lua"):
        head = path.read_text(encoding="utf-8").split("\n\n")[0]
        assert "KEYS" in head and "ARGV" in head, path.name
