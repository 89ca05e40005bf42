"""A real Prometheus (Debian package) scrapes a real `crackseg serve` and a real node exporter; after some traffic
every dashboard query and every rule returns data.

The only queries allowed to come back empty are the cluster-only ones (CLUSTER_ONLY in queries.py): the
retraining Jobs come from kube-state-metrics and pod usage from cAdvisor, neither of which exists outside
Kubernetes. Alert expressions are conditions that are false on a healthy system, so for them the test checks
that Prometheus evaluates them without error and that every series they read exists.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.helpers.procs import BIN, ManagedProcess, free_port, start_predictor
from tests.monitoring.queries import RULES, dashboard_queries, metric_names, rule_queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def _png(rng: np.random.Generator, h: int = 48, w: int = 64, mask: bool = False) -> bytes:
    from PIL import Image

    if mask:
        arr = (rng.random((h, w)) > 0.9).astype(np.uint8) * 255
    else:
        arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    if not (BIN / "crackseg").exists():
        pytest.skip("the crackseg command is not installed")
    torch = pytest.importorskip("torch")
    from ml.checkpoint import ModelConfig, save_model
    from ml.models import create_model
    from services.common.feedback import FeedbackStore, RetrainOutcome

    work = tmp_path_factory.mktemp("prom-stack")
    torch.manual_seed(0)
    config = ModelConfig(base_width=4, depth=2, version="1")
    save_model(create_model(config.arch, **config.arch_kwargs()), config, work / "model")
    # One finished run in the history, so the loop dashboard's run and promotion panels have a real value.
    FeedbackStore(work / "feedback").record_retrain(
        RetrainOutcome(run="crackseg-retrain-000000000001", outcome="promoted", model_version="1")
    )

    procs: list[ManagedProcess] = []
    try:
        predictor_url, predictor = start_predictor(
            work / "model",
            work / "predictor.log",
            {
                "CRACKSEG_FEEDBACK_DIR": str(work / "feedback"),
                "CRACKSEG_MODELS_DIR": str(work / "models"),
                "CRACKSEG_MODEL_CACHE_DIR": str(work / "cache"),
                "CRACKSEG_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "CRACKSEG_API_TOKEN": "",
            },
        )
        procs.append(predictor)
        targets = {"crackseg-predictor": predictor_url.removeprefix("http://")}
        if NODE_EXPORTER:
            node_port = free_port()
            procs.append(
                ManagedProcess(
                    [
                        NODE_EXPORTER,
                        f"--web.listen-address=127.0.0.1:{node_port}",
                        "--collector.disable-defaults",
                        "--collector.cpu",
                        "--collector.meminfo",
                        "--collector.loadavg",
                        "--collector.filesystem",
                    ],
                    log_path=work / "node-exporter.log",
                )
            )
            targets["node"] = f"127.0.0.1:{node_port}"
        prom_port = free_port()
        config_path = work / "prometheus.yml"
        # monitoring/prometheus.yml with the ports of this run and a 1 s scrape, so rates exist within seconds.
        prom_config = yaml.safe_load((RULES.parents[1] / "prometheus.yml").read_text())
        prom_config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        prom_config["rule_files"] = [str(RULES)]
        for job in prom_config["scrape_configs"]:
            job["static_configs"] = (
                [{"targets": [targets[job["job_name"]]]}] if job["job_name"] in targets else []
            )
        config_path.write_text(yaml.safe_dump(prom_config))
        prometheus = ManagedProcess(
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            log_path=work / "prometheus.log",
        )
        procs.append(prometheus)
        prom = f"http://127.0.0.1:{prom_port}"
        prometheus.wait_http(f"{prom}/-/ready", timeout=60)
        yield {"predictor": predictor_url, "prometheus": prom, "work": work}
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture(scope="module")
def traffic(stack: dict[str, Any]) -> dict[str, Any]:
    """Predictions, labelled and unlabelled feedback, and bad inputs, then time for a few scrapes."""
    rng = np.random.default_rng(0)
    url = stack["predictor"]
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(4):
            r = client.post("/predict", files={"file": ("a.png", _png(rng), "image/png")})
            assert r.status_code == 200, r.text
        r = client.post(
            "/predict", params={"format": "png"}, files={"file": ("b.png", _png(rng), "image/png")}
        )
        assert r.status_code == 200, r.text
        r = client.post(
            "/save-for-retrain",
            files={
                "file": ("c.png", _png(rng), "image/png"),
                "mask": ("m.png", _png(rng, mask=True), "image/png"),
            },
            data={"verdict": "missed_cracks"},
        )
        assert r.status_code == 200, r.text
        r = client.post(
            "/save-for-retrain",
            files={"file": ("d.png", _png(rng), "image/png")},
            data={"verdict": "correct"},
        )
        assert r.status_code == 200, r.text
        bad = client.post("/predict", files={"file": ("x.png", b"this is not an image", "image/png")})
        assert 400 <= bad.status_code < 500, bad.text
        assert client.get("/ping").status_code == 200
    # Scrapes every second; rate() needs two samples after the traffic: wait until Prometheus has three.
    after = time.time() + 3
    newest = _wait_for(stack["prometheus"], f"min(timestamp(up)) > {after}", timeout=60)
    assert newest, "Prometheus did not scrape after the traffic within 60 s"
    return stack


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=30)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


def _wait_for(prom: str, expr: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = _query(prom, expr)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_every_dashboard_query_returns_data(traffic: dict[str, Any]) -> None:
    prom = traffic["prometheus"]
    empty, skipped = [], []
    for q in dashboard_queries():
        if q.cluster_only:
            _query(prom, q.promql)  # still evaluates without error
            skipped.append(q.where)
            continue
        if (
            q.promql.startswith(
                ("1 - avg by (instance) (rate(node_", "node_", "1 - node_", "min by (instance) (node_")
            )
            and not NODE_EXPORTER
        ):
            skipped.append(q.where)
            continue
        if not _wait_for(prom, q.promql):
            empty.append(f"{q.where}: {q.promql}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    # Only the kube-state-metrics and cAdvisor panels may be skipped here.
    assert len(skipped) <= 5, skipped


def test_recording_rules_return_data(traffic: dict[str, Any]) -> None:
    prom = traffic["prometheus"]
    for q in rule_queries("record"):
        assert _wait_for(prom, q.promql), f"{q.where} returned no data"
    name = "crackseg:http_5xx_ratio:rate5m"
    assert _wait_for(prom, name), f"Prometheus did not record {name}"


def test_alert_rules_evaluate_and_read_existing_series(traffic: dict[str, Any]) -> None:
    prom = traffic["prometheus"]
    rules = httpx.get(f"{prom}/api/v1/rules", timeout=30).json()["data"]["groups"]
    health = {r["name"]: (r["health"], r.get("lastError", "")) for g in rules for r in g["rules"]}
    expected = {q.where.split(" / ")[1] for q in rule_queries()}
    assert expected <= set(health), f"rules not loaded: {expected - set(health)}"
    bad = {name: h for name, h in health.items() if h[0] != "ok"}
    assert not bad, bad
    missing = []
    for q in rule_queries("alert"):
        _query(prom, q.promql)
        for metric in metric_names(q.promql):
            if metric.startswith("kube_job_"):
                continue  # kube-state-metrics: cluster only
            if not _query(prom, f'count({{__name__="{metric}"}})'):
                missing.append(f"{q.where}: {metric}")
    assert not missing, missing


def test_healthy_system_fires_no_alert(traffic: dict[str, Any]) -> None:
    prom = traffic["prometheus"]
    alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=30).json()["data"]["alerts"]
    firing = [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]
    assert not firing, firing


def test_traffic_is_visible_in_the_metrics(traffic: dict[str, Any]) -> None:
    prom = traffic["prometheus"]
    by_status = {
        r["metric"]["status"]: float(r["value"][1])
        for r in _query(prom, 'sum by (status) (http_requests_total{job="crackseg-predictor"})')
    }
    assert by_status.get("2xx", 0) >= 7 and by_status.get("4xx", 0) >= 1, by_status
    verdicts = {
        r["metric"]["verdict"]
        for r in _query(prom, 'crackseg_feedback_received_total{job="crackseg-predictor"}')
    }
    assert {"missed_cracks", "correct"} <= verdicts
    assert _query(prom, 'crackseg_model_info{job="crackseg-predictor",version="1"} == 1')
    labelled = _query(prom, 'crackseg_feedback_labelled_since_watermark{job="crackseg-predictor"}')
    assert float(labelled[0]["value"][1]) >= 1
    assert _query(prom, 'crackseg_retrain_runs{job="crackseg-predictor",outcome="promoted"} == 1')
    assert os.path.isdir(traffic["work"] / "feedback")
