"""Alert rules: promtool's syntax check and unit tests (monitoring/tests/crackseg.rules.test.yaml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.queries import RULE_TESTS, RULES, promtool

pytestmark = pytest.mark.skipif(
    promtool() is None, reason="promtool not installed (apt-get install prometheus)"
)

REQUIRED_ALERTS = {
    "CracksegPredictorDown",
    "CracksegHigh5xxRatio",
    "CracksegHighP99Latency",
    "CracksegNoModelLoaded",
    "CracksegRetrainFailed",
    "CracksegFeedbackBacklog",
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool()), *args], capture_output=True, text=True, timeout=120)


def test_rules_pass_promtool_check() -> None:
    result = _run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests() -> None:
    result = _run("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_documented() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert set(alerts) == REQUIRED_ALERTS
    tested = {
        t["alertname"]
        for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for t in case.get("alert_rule_test", [])
    }
    assert tested == REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    """The unit tests can fail: raising the 5xx threshold to 50 % makes the firing case fail."""
    broken = tmp_path / "rules"
    broken.mkdir()
    (broken / RULES.name).write_text(
        RULES.read_text().replace(
            "crackseg:http_5xx_ratio:rate5m > 0.05", "crackseg:http_5xx_ratio:rate5m > 0.5"
        )
    )
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    shutil.copy(RULE_TESTS, tests_dir / RULE_TESTS.name)
    result = _run("test", "rules", str(tests_dir / RULE_TESTS.name))
    assert result.returncode != 0
    assert "CracksegHigh5xxRatio" in result.stdout + result.stderr
