"""One-way dependencies: routing/, recordings/ and chatbot/ import neither contact_center nor
each other; contact_center/media is a leaf of contact_center."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "routing": {"contact_center", "chatbot", "recordings"},
    "recordings": {"contact_center", "chatbot", "routing"},
    "chatbot": {"contact_center", "routing", "recordings"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_its_neighbours(package):
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert bad == []


def test_media_package_is_a_leaf():
    bad = []
    for path in (ROOT / "contact_center" / "media").rglob("*.py"):
        for name in _imports(path):
            if name.startswith("contact_center.") and not name.startswith("contact_center.media"):
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert bad == []
