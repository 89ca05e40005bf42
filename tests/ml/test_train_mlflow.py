"""Two epochs on tiny synthetic data against a real MLflow server: run, metrics, artifacts, registered version."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.train import TrainParams, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_train_logs_and_registers(
    mlflow_server: str, tiny_dataset: Path, tiny_params: TrainParams, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from ml.checkpoint import read_config
    from ml.evaluate import evaluate
    from ml.tracking import REGISTERED_MODEL

    result = train(
        tiny_params,
        data_root=tiny_dataset,
        out_dir=tmp_path / "out",
        tracking_uri=mlflow_server,
        tags={"feedback_count": "3", "run_name": "tiny"},
    )
    assert result.run_id and result.registered_version

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["base_width"] == "4" and run.data.params["n_val"] == "2"
    assert run.data.tags["dataset_hash"] == result.dataset_hash
    history = client.get_metric_history(result.run_id, "val_f1_ods")
    assert [m.step for m in history] == [1, 2]
    assert len(client.get_metric_history(result.run_id, "train_loss")) == 2
    assert run.data.metrics["final_val_f1_ods"] == pytest.approx(result.best_val_f1)

    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"model", "plots", "overlays"} <= artifacts
    assert {a.path for a in client.list_artifacts(result.run_id, "model")} == {
        "model/config.json",
        "model/model.safetensors",
        "model/model.onnx",  # every registered version carries what the lean predictor serves
    }
    assert {a.path for a in client.list_artifacts(result.run_id, "plots")} == {"plots/pr_curve.png"}
    assert len(client.list_artifacts(result.run_id, "overlays")) == 2

    version = client.get_model_version(REGISTERED_MODEL, result.registered_version)
    assert version.run_id == result.run_id
    tags = version.tags
    assert tags["status"] == "candidate"
    assert tags["dataset_hash"] == result.dataset_hash
    assert tags["git_commit"] == read_config(result.model_dir).git_commit
    assert tags["parent_version"] == "none"
    assert tags["feedback_count"] == "3"
    assert float(tags["f1_ods"]) == pytest.approx(result.best_val_f1, abs=1e-4)
    assert "f1_at_0_5" in tags
    assert read_config(result.model_dir).version == result.registered_version

    # The registry copy evaluates exactly like the local one, by version and by alias.
    client.set_registered_model_alias(REGISTERED_MODEL, "champion", result.registered_version)
    local = evaluate(result.model_dir, tiny_dataset, split=None)
    cache = tmp_path / "cache"
    by_alias = evaluate(
        f"models:/{REGISTERED_MODEL}@champion",
        tiny_dataset,
        split=None,
        cache_dir=cache,
        tracking_uri=mlflow_server,
    )
    assert by_alias.f1_ods == local.f1_ods and by_alias.per_image == local.per_image
    assert (cache / REGISTERED_MODEL / f"v{result.registered_version}" / "model.safetensors").is_file()
    by_number = evaluate(
        f"models:/{REGISTERED_MODEL}/{result.registered_version}",
        tiny_dataset,
        split=None,
        cache_dir=cache,
        tracking_uri=mlflow_server,
    )
    assert by_number.f1_at_0_5 == local.f1_at_0_5

    # A second version fine-tuned from the first records its parent.
    child = train(
        tiny_params.model_copy(update={"epochs": 1}),
        data_root=tiny_dataset,
        out_dir=tmp_path / "child",
        init_from=result.model_dir,
        tracking_uri=mlflow_server,
    )
    child_version = client.get_model_version(REGISTERED_MODEL, str(child.registered_version))
    assert child_version.tags["parent_version"] == result.registered_version
    assert int(child.registered_version or 0) == int(result.registered_version) + 1

    with pytest.raises(ValueError, match="no such alias"):
        evaluate(
            f"models:/{REGISTERED_MODEL}@nope", tiny_dataset, cache_dir=cache, tracking_uri=mlflow_server
        )
