"""Dashboards: well-formed Grafana JSON, every query parses with Prometheus' own parser, every metric exists."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.procs import REPO
from tests.monitoring.queries import (
    DASHBOARDS,
    as_rule_file,
    dashboard_queries,
    metric_names,
    promtool,
    rule_queries,
)

EXTERNAL_METRICS = re.compile(r"^(up|node_\w+|kube_job_\w+|container_\w+|http_request\w*|time)$")


def test_there_are_the_four_dashboards() -> None:
    assert {p.name for p in DASHBOARDS} == {
        "crackseg-api.json",
        "crackseg-model.json",
        "crackseg-loop.json",
        "crackseg-cluster.json",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] == path.stem and board["title"].startswith("crackseg / ")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        own = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not own & cells, f"{panel['title']} overlaps another panel"
        cells |= own


def test_dashboards_have_unique_uids() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.skipif(promtool() is None, reason="promtool not installed (apt-get install prometheus)")
def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 25
    rule_file = as_rule_file(queries, tmp_path / "queries.yaml")
    result = subprocess.run(
        [str(promtool()), "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


@pytest.mark.skipif(promtool() is None, reason="promtool not installed (apt-get install prometheus)")
def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    from tests.monitoring.queries import Query

    rule_file = as_rule_file([Query("broken", "sum(rate(http_requests_total[5m])")], tmp_path / "broken.yaml")
    result = subprocess.run(
        [str(promtool()), "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert result.returncode != 0


def _contract_metrics() -> set[str]:
    text = (REPO / "docs" / "contracts.md").read_text()
    section = text.split("## Prometheus metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(crackseg_[a-z_]+)", section))


def test_queries_use_contract_metrics_only() -> None:
    contract = _contract_metrics()
    assert "crackseg_inference_seconds" in contract and "crackseg_retrain_runs" in contract
    unknown: set[str] = set()
    for q in dashboard_queries() + rule_queries():
        for name in metric_names(q.promql):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base not in contract and name not in contract and not EXTERNAL_METRICS.match(name):
                unknown.add(f"{q.where}: {name}")
    assert not unknown, sorted(unknown)


def test_every_contract_metric_is_on_a_dashboard() -> None:
    used = {
        re.sub(r"_(bucket|sum|count)$", "", n) for q in dashboard_queries() for n in metric_names(q.promql)
    }
    missing = _contract_metrics() - used
    assert not missing, missing


def test_local_prometheus_config_scrapes_the_predictor_job_the_queries_use() -> None:
    import yaml

    config = yaml.safe_load((REPO / "monitoring" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["crackseg-predictor"]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    assert config["rule_files"] == ["rules/crackseg.rules.yaml"]
    for q in dashboard_queries():
        if "crackseg_" in q.expr or "http_request" in q.expr:
            assert 'job="crackseg-predictor"' in q.expr, q.where
