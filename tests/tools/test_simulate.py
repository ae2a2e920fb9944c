"""``simulate`` against a real ``contact-center serve``: a video call, frames both ways, in order."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from contact_center.tools import simulate
from tests.helpers import PASSWORD, ROOT, cli_env, free_port, run_cli, wait_ready


@pytest.fixture
def served(tmp_path):  # type: ignore[no-untyped-def]
    """A real server process (loopback media only) with one video advisor; yields its URL."""
    port = free_port()
    env = cli_env(
        CC_VAR_DIR=str(tmp_path / "var"),
        CC_PORT=str(port),
        CC_ICE_HOST_ADDRESSES="127.0.0.1",
        CC_LOG_LEVEL="WARNING",
        CC_LOG_JSON="false",
    )
    assert run_cli("db", "upgrade", env=env).returncode == 0
    made = run_cli(
        "users", "create", "sim-test-advisor", "--role", "advisor", "--languages", "en",
        "--skills", "general:3", "--capacity", "video:1", "--password-stdin",
        env=env, input=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    app = subprocess.Popen(
        [sys.executable, "-m", "contact_center", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process=app)
        yield url
    finally:
        app.send_signal(signal.SIGINT)
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_one_video_call_reports_frames_both_ways_in_order(served, capsys):
    code = simulate.main(
        ["--url", served, "--calls", "1", "--seconds", "3", "--warmup", "1",
         "--channel", "video", "--advisor", f"sim-test-advisor:{PASSWORD}"]
    )  # fmt: skip
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert code == 0, report
    assert report["completed"] == 1 and report["failed"] == 0
    assert "1 completed, 0 failed" in out[0]
    for direction in ("customer_to_advisor", "advisor_to_customer"):
        flow = report[direction]
        assert flow["video_sent"] > 0 and flow["video_received"] >= 30, flow
        assert flow["audio_received"] >= 50, flow
        assert flow["out_of_order"] == 0, flow
        assert flow["min_fps"] > 10, flow
        assert flow["latency_p50_ms"] is not None and flow["latency_p50_ms"] < 1000, flow


def test_the_parser_needs_an_advisor_and_bounds_the_run():
    assert simulate.main(["--calls", "1", "--seconds", "1"]) == 2
    assert simulate.main(["--calls", "0", "--advisor", "a:b"]) == 2


def test_a_stamped_line_reads_back_and_never_passes_for_a_card_number() -> None:
    from contact_center.tools.simulate import parse_line, stamp_line
    from recordings.redact import mask_card_numbers

    for sent_ns in (1_075_696_870_289, 4_111_111_111_111_111, 123):
        line = stamp_line("sim", 12, 345, sent_ns)
        assert mask_card_numbers(line) == line
        assert parse_line(line) == ("sim", 12, 345, sent_ns)
    assert parse_line("sim 12 345 1075696870289") is None
