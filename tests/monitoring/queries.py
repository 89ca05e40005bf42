"""Every PromQL expression of the dashboards and rules, and helpers to run promtool."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.helpers.procs import REPO

MONITORING = REPO / "monitoring"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
RULES = MONITORING / "rules" / "crackseg.rules.yaml"
RULE_TESTS = MONITORING / "tests" / "crackseg.rules.test.yaml"
# Grafana's built-in range variables, replaced by a concrete range before Prometheus sees the query.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
# Metrics that only exist in a cluster: kube-state-metrics (retrain Jobs) and cAdvisor (pod usage).
CLUSTER_ONLY = re.compile(r"\b(kube_job_\w+|container_\w+)\b")


@dataclass(frozen=True)
class Query:
    where: str
    expr: str

    @property
    def promql(self) -> str:
        expr = self.expr
        for var, value in GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        return expr

    @property
    def cluster_only(self) -> bool:
        return bool(CLUSTER_ONLY.search(self.expr))


def dashboard_queries() -> list[Query]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append(Query(f"{path.name} / {panel['title']} / {target['refId']}", target["expr"]))
    return out


def rule_queries(kind: str | None = None) -> list[Query]:
    """Rule expressions; ``kind`` is "alert", "record" or None for both."""
    out = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            rkind = "alert" if "alert" in rule else "record"
            if kind in (None, rkind):
                out.append(
                    Query(f"{group['name']} / {rule.get('alert') or rule.get('record')}", rule["expr"])
                )
    return out


PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "delta", "histogram_quantile",
    "vector", "absent", "or", "and", "unless", "on", "ignoring", "group_left", "group_right", "time", "le",
    "bool", "offset",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (labels, grouping clauses, strings and ranges removed)."""
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\boffset\s+-?[0-9][0-9smhdwy]*", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {n for n in names if n not in PROMQL_WORDS and ":" not in n and not n.startswith("$")}


def promtool() -> str | None:
    return shutil.which("promtool")


def as_rule_file(queries: list[Query], path: Path) -> Path:
    """Wrap queries as recording rules, so `promtool check rules` parses each of them with Prometheus' parser."""
    rules = [{"record": f"crackseg:query_{i}", "expr": q.promql} for i, q in enumerate(queries)]
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, sort_keys=False)
    )
    return path
