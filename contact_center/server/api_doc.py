"""Writes docs/openapi.json from the app's routes, so that the document in the repository
(and its diff in a review) cannot drift from the code.

``python -m contact_center.server.api_doc`` rewrites it; a test fails when it is stale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from contact_center.config import load_settings
from contact_center.server.app import create_app
from contact_center.views.docs import document

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def written() -> str:
    """The OpenAPI document of a freshly built app (nothing is started)."""
    with tempfile.TemporaryDirectory() as var:
        settings = load_settings(var_dir=Path(var), secret_key="docs-" + "x" * 40)
        return json.dumps(document(create_app(settings)), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    DOC.write_text(written(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
