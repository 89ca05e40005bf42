"""The registry reader: version logic offline, and the REST reads against a real MLflow server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ui.registry import ModelVersion, RegistryClient, RegistryUnavailable, RegistryView
from tests.helpers.procs import free_port


def test_version_metric_prefers_the_contract_tag_over_the_run_metric() -> None:
    v = ModelVersion(
        1, None, "r", {"f1_ods": "0.61", "f1_at_0_5": "nan"}, (), {"f1_ods": 0.5, "f1_at_0_5": 0.4}
    )
    assert v.metric("f1_ods") == 0.61
    assert v.metric("f1_at_0_5") == 0.4, "an unusable tag falls back to the run"
    assert v.metric("iou") is None
    assert v.status == "unknown" and ModelVersion(2, None, None, {}, ("champion",)).status == "promoted"


def test_view_quality_by_version_is_oldest_first_and_skips_missing() -> None:
    when = datetime(2026, 11, 27, tzinfo=UTC)
    view = RegistryView(
        "crackseg",
        True,
        (
            ModelVersion(3, when, None, {"f1_ods": "0.7", "status": "promoted"}, ("champion",)),
            ModelVersion(2, when, None, {"status": "candidate"}),
            ModelVersion(1, when, None, {"f1_ods": "0.6", "status": "promoted"}),
        ),
    )
    assert view.champion is not None and view.champion.version == 3
    assert view.quality_by_version() == [
        {"version": 1, "label": "v1", "f1_ods": 0.6, "status": "promoted"},
        {"version": 3, "label": "v3 ★", "f1_ods": 0.7, "status": "promoted"},
    ]


def test_unreachable_mlflow_is_a_plain_message() -> None:
    sleeps: list[float] = []
    port = free_port()
    client = RegistryClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.05, sleep=sleeps.append)
    with pytest.raises(
        RegistryUnavailable, match=rf"MLflow server at http://127.0.0.1:{port} is not reachable"
    ):
        client.view()
    assert sleeps == pytest.approx([0.05, 0.1])


@pytest.mark.integration
def test_reads_versions_tags_alias_and_run_metrics_from_a_real_mlflow(mlflow_server: str) -> None:
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    name = "crackseg-ui-test"
    client = RegistryClient(mlflow_server, name, retries=0)
    assert client.view() == RegistryView(name=name, exists=False)

    ml = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    experiment = ml.create_experiment(f"ui-registry-{datetime.now(UTC).timestamp()}")
    ml.create_registered_model(name)
    for n, (f1, status) in enumerate([(0.62, "promoted"), (0.60, "challenger-rejected")], start=1):
        run = ml.create_run(experiment)
        ml.log_metric(run.info.run_id, "precision", 0.7 + n / 100)
        ml.log_metric(run.info.run_id, "f1_ods", f1)
        ml.set_terminated(run.info.run_id)
        tags = {"f1_ods": str(f1), "status": status, "dataset_hash": "ab" * 32, "feedback_count": str(10 * n)}
        if n == 2:  # what the retraining gate tags (services/retrain/promote.py GateDecision.tags)
            tags |= {
                "gate_decision": "reject",
                "gate_feedback_challenger": "0.5500",
                "gate_feedback_champion": "0.4000",
                "gate_base_challenger": "0.6000",
                "gate_base_champion": "0.6200",
            }
        ml.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags)
    ml.set_registered_model_alias(name, "champion", "1")

    view = client.view()
    assert view.exists and [v.version for v in view.versions] == [2, 1]
    champion = view.champion
    assert champion is not None and champion.version == 1 and champion.status == "promoted"
    assert champion.metric("f1_ods") == pytest.approx(0.62)
    assert champion.run_metrics["precision"] == pytest.approx(0.71)
    rejected = view.versions[0].row()
    assert rejected["status"] == "challenger-rejected" and rejected["feedback_count"] == 20
    assert rejected["dataset_hash"] == "ab" * 6 and not rejected["champion"]
    assert rejected["gate"] == "reject: feedback 0.5500 vs 0.4000 · base 0.6000 vs 0.6200"
    assert view.versions[1].row()["gate"] == ""
