"""bench.verify end to end on a few small contacts: it seals, verifies and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.verify import main


def test_bench_verify_small_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--contacts", "3", "--mb-per-contact", "0.2", "--jobs", "1,2", "--repeat", "1",
            "--dir", str(tmp_path)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["contacts"] == 3 and 0.6 <= result["data_mb"] < 0.7
    assert [(r["cache"], r["jobs"]) for r in result["runs"]] == [
        ("warm", 1), ("warm", 2), ("cold", 1), ("cold", 2),
    ]
    for run in result["runs"]:  # every byte sealed (manifests too) hashed again
        assert run["files"] == 9 and run["bytes_hashed"] == result["data_bytes"]
        assert run["mb_per_s"] > 0 and run["contacts_per_s"] > 0
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone
    with pytest.raises(SystemExit, match="over --max-mb"):
        main(["--contacts", "10", "--mb-per-contact", "10", "--max-mb", "50", "--dir", str(tmp_path)])
