"""``serve --workers 2``: /metrics from any worker sums what every worker counted."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, cli_env, free_ports, run_cli, wait_ready


def _get(url: str) -> str:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def _healthz_count(text: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cc_http_requests_total" and s.labels.get("route") == "/healthz"
    )


def _healthz_in_file(path) -> float:  # type: ignore[no-untyped-def]
    """What one worker counted (its own file of counters)."""
    return sum(
        value
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
        if '"cc_http_requests_total"' in key and '"/healthz"' in key
    )


def test_two_workers_report_the_sum_of_their_counts(tmp_path, redis_url):
    port = free_ports(3)  # the shared port, then each worker's own
    var = tmp_path / "var"
    env = cli_env(
        CC_VAR_DIR=str(var), CC_PORT=str(port), CC_LOG_JSON="false", CC_REDIS_URL=redis_url,
        CC_BOT_ENABLED="false",
    )
    assert run_cli("db", "upgrade", env=env).returncode == 0
    (var / "metrics").mkdir(parents=True)
    (var / "metrics" / "counter_1.db").write_bytes(b"left over from an earlier run")
    server = subprocess.Popen(
        [sys.executable, "-m", "contact_center", "serve", "--workers", "2"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for offset in (0, 1, 2):
            try:
                wait_ready(f"http://127.0.0.1:{port + offset}", process=server)
            except AssertionError as exc:  # say why it stopped
                server.wait(timeout=30)
                raise AssertionError(f"{exc}: {server.stderr.read()[-3000:]}") from None
        # Each worker also listens on a port of its own (its media port): 15 to one, 25 to the other.
        for offset, times in ((1, 15), (2, 25)):
            for _ in range(times):
                _get(f"http://127.0.0.1:{port + offset}/healthz")
        counter_files = sorted((var / "metrics").glob("counter_*.db"))
        assert "counter_1.db" not in {p.name for p in counter_files}  # emptied at start
        assert sorted(_healthz_in_file(p) for p in counter_files) == [15, 25]
        for url in (base, f"http://127.0.0.1:{port + 1}", f"http://127.0.0.1:{port + 2}"):
            assert _healthz_count(_get(url + "/metrics")) == 40, url  # any worker: the sum
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""
