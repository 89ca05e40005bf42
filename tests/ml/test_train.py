"""Training loop: params file, determinism, resume after a crash, fine-tuning with extra data (tracking off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml import train as train_module
from ml.checkpoint import read_config
from ml.train import TrainParams, TrainResult, train


@pytest.fixture(scope="module")
def reference(
    tiny_dataset: Path, tiny_params: TrainParams, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    return train(
        tiny_params, data_root=tiny_dataset, out_dir=tmp_path_factory.mktemp("ref"), tracking_uri="none"
    )


def test_reference_run_outputs(reference: TrainResult) -> None:
    config = read_config(reference.model_dir)
    assert (config.arch, config.base_width, config.depth) == ("attention_unet", 4, 2)
    assert config.threshold == reference.threshold and 0 < config.threshold < 1
    assert config.dataset_hash == reference.dataset_hash and len(config.dataset_hash or "") == 64
    assert config.git_commit  # a sha, or "unknown" outside git
    assert config.metrics["val_f1_ods"] == pytest.approx(reference.best_val_f1)
    assert reference.epochs_run == 2 and [h["epoch"] for h in reference.history] == [1, 2]
    assert reference.registered_version is None and reference.run_id is None
    out = reference.model_dir.parent
    assert (out / "pr_curve.png").stat().st_size > 1000
    assert {p.name for p in (out / "checkpoint").iterdir()} == {
        "last.safetensors",
        "best.safetensors",
        "optimizer.pt",
        "state.json",
    }


def test_same_seed_same_weights(
    reference: TrainResult, tiny_dataset: Path, tiny_params: TrainParams, tmp_path: Path
) -> None:
    again = train(tiny_params, data_root=tiny_dataset, out_dir=tmp_path / "a", tracking_uri="none")
    assert read_config(again.model_dir).weights_sha256 == read_config(reference.model_dir).weights_sha256
    assert again.history == reference.history
    other = train(
        tiny_params.model_copy(update={"seed": 1}),
        data_root=tiny_dataset,
        out_dir=tmp_path / "b",
        tracking_uri="none",
    )
    assert read_config(other.model_dir).weights_sha256 != read_config(reference.model_dir).weights_sha256


def _crash_after_the_first_checkpoint(
    params: TrainParams, data: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train into ``out`` until the first epoch's checkpoint is written, then die as a killed process would."""
    real_save = train_module.save_checkpoint

    def save_then_crash(*args: object, **kwargs: object) -> None:
        real_save(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt("simulated crash after the first epoch's checkpoint")

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(params, data_root=data, out_dir=out, tracking_uri="none")
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)


def test_resume_after_a_crash_replays_the_uninterrupted_run(
    reference: TrainResult,
    tiny_dataset: Path,
    tiny_params: TrainParams,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _crash_after_the_first_checkpoint(tiny_params, tiny_dataset, tmp_path, monkeypatch)
    assert not (tmp_path / "model").exists()

    resumed = train(tiny_params, data_root=tiny_dataset, out_dir=tmp_path, tracking_uri="none", resume=True)
    assert resumed.epochs_run == 2
    assert resumed.history == reference.history
    assert read_config(resumed.model_dir).weights_sha256 == read_config(reference.model_dir).weights_sha256


def test_resume_refuses_another_architecture(
    reference: TrainResult, tiny_dataset: Path, tiny_params: TrainParams
) -> None:
    with pytest.raises(ValueError, match="cannot resume"):
        train(
            tiny_params.model_copy(update={"base_width": 8}),
            data_root=tiny_dataset,
            out_dir=reference.model_dir.parent,
            tracking_uri="none",
            resume=True,
        )


def test_resume_refuses_another_schedule_but_not_another_patience(
    reference: TrainResult, tiny_dataset: Path, tiny_params: TrainParams, tmp_path: Path
) -> None:
    import shutil

    # The cosine schedule, loss and sampling of the checkpoint belong to the run that wrote it: resuming it with
    # another epoch count would silently train a recipe nobody asked for.
    out = shutil.copytree(reference.model_dir.parent, tmp_path / "run")
    with pytest.raises(
        ValueError, match=r"cannot resume: .* was trained with epochs=2, lr=0.001; params ask for "
    ):
        train(
            tiny_params.model_copy(update={"epochs": 4, "lr": 0.002}),
            data_root=tiny_dataset,
            out_dir=out,
            tracking_uri="none",
            resume=True,
        )
    again = train(
        tiny_params.model_copy(update={"patience": 9}),
        data_root=tiny_dataset,
        out_dir=out,
        tracking_uri="none",
        resume=True,
    )
    assert again.epochs_run == 2 and again.history == reference.history


def test_fine_tune_with_extra_data(
    reference: TrainResult, tiny_dataset: Path, tiny_params: TrainParams, tmp_path: Path
) -> None:
    from ml.checkpoint import ModelConfig, load_model, save_model
    from ml.data import synthetic

    parent = load_model(reference.model_dir)
    parent_dir = save_model(
        parent.module, parent.config.model_copy(update={"version": "7"}), tmp_path / "parent"
    )
    extra = tmp_path / "feedback"
    synthetic.generate(2, extra, size=(64, 64), seed=99)
    # params ask for width 8, but fine-tuning keeps the parent's architecture
    params = tiny_params.model_copy(update={"base_width": 8, "epochs": 1})
    result = train(
        params,
        data_root=tiny_dataset,
        out_dir=tmp_path / "out",
        init_from=parent_dir,
        extra_data=[extra],
        tracking_uri="none",
    )
    config: ModelConfig = read_config(result.model_dir)
    assert config.parent_version == "7"
    assert config.base_width == 4
    assert result.dataset_hash != reference.dataset_hash


def test_params_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("prepare: {}\ntrain:\n  base_width: 8\n  epochs: 3\n  amp: false\n")
    params = TrainParams.from_yaml(path, {"epochs": "5"})
    assert (params.base_width, params.epochs, params.amp, params.depth) == (8, 5, False, 4)
    path.write_text("train:\n  base_witdh: 8\n")
    with pytest.raises(ValueError, match="base_witdh"):
        TrainParams.from_yaml(path)
    path.write_text("other: 1\n")
    with pytest.raises(ValueError, match="no 'train:'"):
        TrainParams.from_yaml(path)


def test_repo_params_file_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    params = TrainParams.from_yaml(repo / "params.yaml")
    assert params.arch == "attention_unet"


def test_bad_data_root(tiny_params: TrainParams, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        train(tiny_params, data_root=tmp_path / "missing", out_dir=tmp_path / "o", tracking_uri="none")


def test_cuda_requested_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train_module.pick_device("cuda")


def test_weight_ema_averages_weights_and_bn_statistics() -> None:
    import torch

    from ml.train_loop import WeightEMA

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    ema = WeightEMA(model, decay=0.9)
    assert ema.rate() == pytest.approx(0.1)  # warm-up: (1 + 0) / (10 + 0)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    model.train()
    model(torch.randn(4, 1, 3, 3) + 5)  # moves the BN running mean and counts a batch
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    now = model.state_dict()
    for name, avg in ema.module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            assert int(avg) == int(now[name]) == 1  # integers are copied, not averaged
        else:
            assert torch.allclose(avg, 0.1 * start[name] + 0.9 * now[name]), name
    assert ema.updates == 1
    for _ in range(100):
        ema.update(model)
    assert ema.rate() == 0.9  # the warm-up has reached the decay
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(model, decay=1.0)


def test_ema_run_saves_the_average_and_resumes_it(
    reference: TrainResult,
    tiny_dataset: Path,
    tiny_params: TrainParams,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    from safetensors.torch import load_file

    params = tiny_params.model_copy(update={"ema_decay": 0.5})
    whole = train(params, data_root=tiny_dataset, out_dir=tmp_path / "whole", tracking_uri="none")
    assert read_config(whole.model_dir).weights_sha256 != read_config(reference.model_dir).weights_sha256
    ckpt = tmp_path / "whole" / "checkpoint"
    best, last, avg = (load_file(str(ckpt / f"{n}.safetensors")) for n in ("best", "last", "ema"))
    # The best epoch's saved weights are the average's, not the trained weights of that epoch.
    if read_config(whole.model_dir).metrics["best_epoch"] == len(whole.history):
        assert all(bool((best[k] == avg[k]).all()) for k in best)
    else:
        assert any(not bool((best[k] == avg[k]).all()) for k in best)
    assert any(not bool((avg[k] == last[k]).all()) for k in avg if avg[k].dtype.is_floating_point)

    _crash_after_the_first_checkpoint(params, tiny_dataset, tmp_path / "crashed", monkeypatch)
    resumed = train(
        params, data_root=tiny_dataset, out_dir=tmp_path / "crashed", tracking_uri="none", resume=True
    )
    assert resumed.history == whole.history
    assert read_config(resumed.model_dir).weights_sha256 == read_config(whole.model_dir).weights_sha256

    # A run without an average cannot be resumed as one that keeps it, nor with another decay.
    plain = shutil.copytree(reference.model_dir.parent, tmp_path / "plain")
    with pytest.raises(ValueError, match=r"cannot resume: .* ema_decay=None; params ask for ema_decay=0\.5"):
        train(params, data_root=tiny_dataset, out_dir=plain, tracking_uri="none", resume=True)
    with pytest.raises(ValueError, match=r"ema_decay=0\.5; params ask for ema_decay=0\.9"):
        train(
            params.model_copy(update={"ema_decay": 0.9}),
            data_root=tiny_dataset,
            out_dir=tmp_path / "whole",
            tracking_uri="none",
            resume=True,
        )


def test_validate_from_skips_early_validation(
    tiny_dataset: Path, tiny_params: TrainParams, tmp_path: Path
) -> None:
    params = tiny_params.model_copy(update={"epochs": 3, "validate_from": 3})
    result = train(params, data_root=tiny_dataset, out_dir=tmp_path, tracking_uri="none")
    assert [("val_f1_ods" in h) for h in result.history] == [False, False, True]
    assert read_config(result.model_dir).metrics["best_epoch"] == 3
    # Past the last epoch, the last epoch is still validated: a run always has a selected model.
    late = train(
        tiny_params.model_copy(update={"validate_from": 50}),
        data_root=tiny_dataset,
        out_dir=tmp_path / "late",
        tracking_uri="none",
    )
    assert [("val_f1_ods" in h) for h in late.history] == [False, True]
