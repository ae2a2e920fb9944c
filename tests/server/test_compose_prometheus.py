"""compose.yaml's Prometheus scrapes the app's /metrics with the app's own token, and its
configuration passes promtool (no Docker engine runs here, so the files are checked)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.helpers import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _prometheus_config() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())


def test_prometheus_scrapes_the_app_with_the_apps_token():
    compose = _compose()
    services = compose["services"]
    prometheus, app = services["prometheus"], services["app"]
    assert "healthcheck" in prometheus and prometheus["depends_on"]["app"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in prometheus["volumes"] if m.startswith("./")}
    for outside in mounts.values():
        assert (ROOT / outside).is_file(), outside
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./deploy/alerts.yml"

    # the token: one variable, the app's setting and Prometheus's secret
    assert app["environment"]["CC_METRICS_TOKEN"].startswith("${CC_METRICS_TOKEN:?")
    assert compose["secrets"]["metrics_token"] == {"environment": "CC_METRICS_TOKEN"}
    assert "metrics_token" in prometheus["secrets"]

    (job,) = _prometheus_config()["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {
        "type": "Bearer", "credentials_file": "/run/secrets/metrics_token"
    }
    port = app["environment"]["CC_PORT"]
    assert job["static_configs"] == [{"targets": [f"app:{port}"]}]
    assert _prometheus_config()["rule_files"] == ["alerts.yml"]  # beside it, as mounted


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_checks_the_configuration(tmp_path):
    # As mounted in the container: the rules beside the configuration, the token a file.
    token = tmp_path / "metrics_token"
    token.write_text("t" * 32)
    config = (ROOT / "deploy" / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(config.replace("/run/secrets/metrics_token", str(token)))
    shutil.copy(ROOT / "deploy" / "alerts.yml", tmp_path / "alerts.yml")
    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout
