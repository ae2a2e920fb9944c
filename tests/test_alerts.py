"""deploy/alerts.yml: valid rules (promtool), each unit-tested (deploy/alerts_test.yml), and
every series they use is one /metrics exposes."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import ROOT
from tests.test_metrics import DOCUMENTED

ALERTS = ROOT / "deploy" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


@needs_promtool
def test_promtool_checks_the_rules():
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_each_alert_fires_when_it_should_and_not_otherwise():
    result = _promtool("test", "rules", str(ROOT / "deploy" / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_the_alerts_an_operator_needs_are_there():
    names = {rule["alert"] for rule in _rules()}
    assert names >= {
        "RecordingFailed", "ContactsWaitingWithAdvisorsAvailable", "RedisDown",
        "UnsealedRecordingsOld",
    }
    tested = (ROOT / "deploy" / "alerts_test.yml").read_text()
    for name in names:
        assert f"alertname: {name}" in tested, f"{name} has no promtool test"
    for rule in _rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_series_in_the_rules_is_exposed():
    used = {
        re.sub(r"_(total|count|sum|bucket)$", "", name)
        for rule in _rules()
        for name in re.findall(r"\bcc_[a-z_]+", rule["expr"])
    }
    assert used <= DOCUMENTED, used - DOCUMENTED
