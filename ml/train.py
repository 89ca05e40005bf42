"""Training: a plain loop (AdamW, cosine schedule, early stopping on validation F1) with MLflow logging.

One epoch is a fixed budget of ``steps_per_epoch`` optimizer steps on random crops (sampled with replacement), so
the cost of an epoch does not depend on the dataset size; validation runs on full images and early stopping
watches the **pooled validation F1 at the ODS threshold** (threshold-free: the served threshold is re-fitted on
validation at the end anyway). The saved model's threshold is the ODS threshold of the best epoch's weights.

Determinism: the same seed gives the same weights on CPU (weights are initialised after ``torch.manual_seed(seed)``,
each epoch reseeds the sampler and the augmentation RNG from ``seed`` and the epoch number, so a resumed run
replays the same batches). On CUDA, cuDNN autotuning is enabled for speed and bit-exactness is not promised.

Resume: after every epoch ``out_dir/checkpoint/`` holds the last and best weights (safetensors), the optimizer
state (``torch.save`` of tensors, read back with ``weights_only=True``) and ``state.json`` (epoch, scheduler, best
score, history, MLflow run id). ``resume=True`` continues from it.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


class TrainParams(BaseModel):
    """Training configuration; ``params.yaml`` key ``train``. Unknown keys are an error (typos must not pass)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    arch: str = "attention_unet"
    base_width: int = Field(16, ge=1)
    depth: int = Field(4, ge=1, le=6)
    epochs: int = Field(20, ge=1)
    steps_per_epoch: int = Field(50, ge=1, description="optimizer steps per epoch (the compute budget)")
    batch_size: int = Field(8, ge=1)
    crop_size: int = Field(256, ge=16)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1, description="cosine floor as a fraction of lr")
    pos_weight: float = Field(10.0, gt=0)
    bce_weight: float = Field(1.0, ge=0)
    dice_weight: float = Field(1.0, ge=0)
    focal_gamma: float = Field(0.0, ge=0)
    patience: int = Field(5, ge=1, description="epochs without a better validation F1 before stopping")
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    train_split: str | None = "train"
    val_split: str | None = Field(None, description="a split of data_root to validate on; None: val_fraction")
    val_fraction: float = Field(0.15, gt=0, lt=1)
    threshold: float = Field(0.5, gt=0, lt=1, description="the fixed threshold reported next to ODS")
    amp: bool = True
    amp_dtype: Literal["auto", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 where the GPU supports it, else float16 with a GradScaler"
    )
    device: Literal["auto", "cpu", "cuda"] | str = "auto"
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: torch's default)")
    n_overlays: int = Field(4, ge=0)

    @classmethod
    def from_yaml(
        cls, path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
    ) -> TrainParams:
        """Read the ``train:`` section of a params file, then apply ``overrides``."""
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"cannot read params file {path}: {e}") from e
        section = raw.get("train") if isinstance(raw, dict) else None
        if not isinstance(section, dict):
            raise ValueError(f"{path} has no 'train:' mapping")
        try:
            return cls.model_validate({**section, **(overrides or {})})
        except ValidationError as e:
            raise ValueError(f"invalid train params in {path}: {e}") from e


@dataclass
class TrainResult:
    """Outcome of ``train``. ``epochs_run`` counts every completed epoch, including those before a resume."""

    model_dir: Path
    run_id: str | None
    registered_version: str | None
    best_val_f1: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    threshold: float = 0.5
    dataset_hash: str = ""


def pick_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available: use 'cpu' or 'auto'")
    return torch.device(name)


def split_pairs(params: TrainParams, data_root: Path) -> tuple[list[Any], list[Any]]:
    """(train, validation) pairs: a named validation split, or a seeded random fraction of the training split."""
    import random

    from ml.data.datasets import discover

    pairs = discover(data_root, params.train_split)
    if params.val_split:
        val = discover(data_root, params.val_split)
        val_ids = {p.id for p in val}
        return [p for p in pairs if p.id not in val_ids], val
    if len(pairs) < 2:
        raise ValueError(
            f"{data_root} has {len(pairs)} training pair(s): at least 2 are needed (train + val)"
        )
    order = list(range(len(pairs)))
    random.Random(params.seed).shuffle(order)
    n_val = min(len(pairs) - 1, max(1, round(params.val_fraction * len(pairs))))
    val_idx = set(order[:n_val])
    return [p for i, p in enumerate(pairs) if i not in val_idx], [
        p for i, p in enumerate(pairs) if i in val_idx
    ]


def _state_dict_cpu(module: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def _save_checkpoint(
    ckpt_dir: Path, *, last: dict[str, Any], best: dict[str, Any], optimizer: Any, state: dict[str, Any]
) -> None:
    """Write the resume folder atomically: built beside it, then swapped in (a crash leaves the old one)."""
    import torch
    from safetensors.torch import save_file

    from ml.fsutil import atomic_write_json

    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{ckpt_dir.name}.", dir=ckpt_dir.parent))
    try:
        save_file(last, str(staging / "last.safetensors"))
        save_file(best, str(staging / "best.safetensors"))
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        atomic_write_json(staging / STATE_FILE, state)
        old = ckpt_dir.with_name(f".{ckpt_dir.name}.old-{os.getpid()}")
        if ckpt_dir.exists():
            os.replace(ckpt_dir, old)
        os.replace(staging, ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _load_checkpoint(
    ckpt_dir: Path, device: Any
) -> tuple[dict[str, Any], dict[str, Any], Any, dict[str, Any]]:
    import json

    import torch
    from safetensors.torch import load_file

    try:
        state = json.loads((ckpt_dir / STATE_FILE).read_text())
        last = load_file(str(ckpt_dir / "last.safetensors"))
        best = load_file(str(ckpt_dir / "best.safetensors"))
        # weights_only=True: tensors and plain containers only, never arbitrary pickled objects.
        optim = torch.load(ckpt_dir / "optimizer.pt", map_location=device, weights_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"cannot resume from {ckpt_dir}: {e}") from e
    return last, best, optim, state


def _overlay(rgb: Any, probs: Any, target: Any, threshold: float) -> Any:
    """Green = true positive, red = false positive, blue = missed crack, over the dimmed image."""
    import numpy as np

    pred = probs >= threshold
    out = (rgb.astype(np.float32) * 0.6).astype(np.uint8)
    out[pred & target] = (0, 255, 0)
    out[pred & ~target] = (255, 0, 0)
    out[~pred & target] = (0, 128, 255)
    return out


def train(
    params: TrainParams,
    *,
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    init_from: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
    register: bool = True,
    extra_data: Sequence[str | os.PathLike[str]] = (),
    tags: Mapping[str, str] | None = None,
    resume: bool = False,
    pairs: tuple[Sequence[Any], Sequence[Any]] | None = None,
    sample_weights: Sequence[float] | None = None,
) -> TrainResult:
    """Train, save the best weights to ``out_dir/model`` and (optionally) register them as ``crackseg``.

    Args:
        params: the configuration.
        data_root: dataset root (split.json, ``<split>/images`` or flat ``images/`` + ``masks/``).
        out_dir: work folder: ``model/`` (the checkpoint), ``checkpoint/`` (resume state), ``history.json``,
            ``pr_curve.png``.
        init_from: a checkpoint folder to fine-tune from; its architecture and normalisation win over ``params``,
            and its ``version`` becomes the parent version.
        tracking_uri: MLflow URI; None → ``MLFLOW_TRACKING_URI`` → ``./mlruns``; ``"none"`` disables tracking.
        register: register a version of ``crackseg`` (needs tracking).
        extra_data: more image/mask folders added to training only (feedback), never to validation.
        tags: run tags, also copied onto the model version (e.g. ``feedback_count``, ``parent_version``);
            ``run_name`` names the MLflow run and is not copied onto the version.
        resume: continue from ``out_dir/checkpoint`` when it exists.
        pairs: explicit ``(train, val)`` pairs (a recipe's mixture, see :mod:`ml.data.mixture`); then
            ``data_root`` only names the data in logs.
        sample_weights: one sampling weight per training pair (with ``pairs``): crops are drawn with these
            probabilities, so each source of a mixture gets its share whatever its size.
    """
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler
    from tqdm import tqdm

    from ml.checkpoint import ModelConfig, build_model, load_model, save_model
    from ml.data.datasets import check_integrity, discover
    from ml.data.torchdata import SegmentationDataset
    from ml.data.transforms import train_transform
    from ml.evaluate import normalise, pr_figure, sweep
    from ml.fsutil import atomic_write_json
    from ml.lineage import dataset_hash, git_commit
    from ml.losses import SegmentationLoss
    from ml.metrics import f1_score
    from ml.tracking import open_tracker, resolve_tracking_uri

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoint"
    tags = dict(tags or {})
    uri = resolve_tracking_uri(tracking_uri)
    if register and uri is None:
        log.info("tracking is disabled, so no registry version will be created")
    device = pick_device(params.device)
    if params.threads:
        torch.set_num_threads(params.threads)

    # Data: validation comes from the base dataset only, so feedback never grades itself.
    if pairs is not None:
        train_pairs, val_pairs = list(pairs[0]), list(pairs[1])
    else:
        train_pairs, val_pairs = split_pairs(params, Path(data_root))
    if sample_weights is not None and len(sample_weights) != len(train_pairs):
        raise ValueError(f"{len(sample_weights)} sample weights for {len(train_pairs)} training pairs")
    check_integrity(train_pairs + val_pairs)
    for folder in extra_data:
        # Checked per folder: ids only need to be unique within one dataset.
        extra = discover(Path(folder), None)
        check_integrity(extra)
        train_pairs += extra
    data_hash = dataset_hash(train_pairs + val_pairs)
    commit = git_commit()

    # Model: fresh, or the architecture + weights of init_from.
    parent_version = tags.get("parent_version")
    if init_from is not None:
        parent = load_model(init_from, device="cpu")
        config = ModelConfig(
            arch=parent.config.arch,
            in_channels=parent.config.in_channels,
            base_width=parent.config.base_width,
            depth=parent.config.depth,
            mean=parent.config.mean,
            std=parent.config.std,
        )
        parent_version = parent_version or parent.config.version
        torch.manual_seed(params.seed)
        model = build_model(config)
        model.load_state_dict(parent.module.state_dict())
    else:
        config = ModelConfig(arch=params.arch, base_width=params.base_width, depth=params.depth)
        torch.manual_seed(params.seed)
        model = build_model(config)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)

    amp_dtype = None
    scaler = None
    if params.amp and device.type == "cuda":
        if params.amp_dtype == "auto":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            amp_dtype = getattr(torch, params.amp_dtype)
        if amp_dtype == torch.float16:
            scaler = torch.amp.GradScaler("cuda")

    train_ds = SegmentationDataset(
        train_pairs, train_transform((params.crop_size, params.crop_size)), cache=True
    )
    val_ds = SegmentationDataset(val_pairs, None, cache=True)
    criterion = SegmentationLoss(params.pos_weight, params.bce_weight, params.dice_weight, params.focal_gamma)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    total_steps = params.epochs * params.steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total_steps, eta_min=params.lr * params.min_lr_ratio
    )

    start_epoch, best_f1, best_epoch, bad_epochs = 0, -1.0, 0, 0
    history: list[dict[str, float]] = []
    best_state = _state_dict_cpu(model)
    run_id: str | None = None
    if resume and (ckpt_dir / STATE_FILE).is_file():
        last, best_state, optim_state, state = _load_checkpoint(ckpt_dir, device)
        if state.get("arch") != config.arch_kwargs():
            raise ValueError(
                f"cannot resume: {ckpt_dir} holds {state.get('arch')}, params ask for {config.arch_kwargs()}"
            )
        model.load_state_dict(last)
        optimizer.load_state_dict(optim_state)
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best_f1, best_epoch = state["epoch"], state["best_f1"], state["best_epoch"]
        bad_epochs, history, run_id = state["bad_epochs"], state["history"], state.get("run_id")
        log.info("resuming %s at epoch %d (best val F1 %.4f)", ckpt_dir, start_epoch, best_f1)

    mean, std = config.mean, config.std
    run_tags = {"dataset_hash": data_hash, "git_commit": commit, **tags}
    with open_tracker(uri, run_name=tags.get("run_name"), tags=run_tags, run_id=run_id) as tracker:
        if start_epoch == 0:
            tracker.log_params(
                {
                    **params.model_dump(),
                    "n_train": len(train_pairs),
                    "n_val": len(val_pairs),
                    "init_from": str(init_from or ""),
                    "extra_data": ",".join(map(str, extra_data)),
                    "device": str(device),
                }
            )
        # A run resumed after it had already stopped early trains no further epoch.
        last_epoch = start_epoch if bad_epochs >= params.patience else params.epochs
        for epoch in range(start_epoch, last_epoch):
            # Reseeding per epoch makes a resumed run replay exactly the batches of an uninterrupted one.
            torch.manual_seed(params.seed * 100_003 + epoch)
            generator = torch.Generator().manual_seed(params.seed * 100_003 + epoch)
            n_samples = params.steps_per_epoch * params.batch_size
            # Feedback folders (extra_data) come after the weighted pairs: they share the mean weight.
            weights = list(sample_weights or [])
            if weights and len(weights) < len(train_ds):
                weights += [float(np.mean(weights))] * (len(train_ds) - len(weights))
            sampler: Any = (
                WeightedRandomSampler(weights, n_samples, replacement=True, generator=generator)
                if weights
                else RandomSampler(train_ds, replacement=True, num_samples=n_samples, generator=generator)
            )
            loader = DataLoader(
                train_ds,
                batch_size=params.batch_size,
                sampler=sampler,
                drop_last=True,
                num_workers=params.num_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
                generator=generator,
            )
            model.train()
            losses = []
            bar = tqdm(
                loader, desc=f"epoch {epoch + 1}/{params.epochs}", unit="step", leave=False, disable=None
            )
            for images, masks in bar:
                images = normalise(images.to(device, non_blocking=True), mean, std)  # (B, 3, crop, crop)
                masks = masks.to(device, non_blocking=True)  # (B, 1, crop, crop)
                if device.type == "cuda":
                    images = images.contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(
                    device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                ):
                    logits = model(images)
                loss = criterion(logits.float(), masks)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}: lower lr")
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            bar.close()

            sw = sweep(
                model,
                val_ds,
                mean=mean,
                std=std,
                device=device,
                fixed_thresholds=(params.threshold,),
                autocast_dtype=amp_dtype,
            )
            ods = sw.curve.ods()
            f1_fixed = float(f1_score(sw.fixed[params.threshold]))
            row = {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)),
                "val_f1_ods": ods.f1,
                "val_threshold_ods": ods.threshold,
                "val_f1_at_fixed": f1_fixed,
                "lr": float(scheduler.get_last_lr()[0]),
            }
            history.append(row)
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
            log.info(
                "epoch %d: loss %.4f, val F1 ODS %.4f (t=%.2f), @%.2f %.4f",
                epoch + 1,
                row["train_loss"],
                ods.f1,
                ods.threshold,
                params.threshold,
                f1_fixed,
            )
            if ods.f1 > best_f1:
                best_f1, best_epoch, bad_epochs = ods.f1, epoch + 1, 0
                best_state = _state_dict_cpu(model)
            else:
                bad_epochs += 1
            _save_checkpoint(
                ckpt_dir,
                last=_state_dict_cpu(model),
                best=best_state,
                optimizer=optimizer,
                state={
                    "epoch": epoch + 1,
                    "best_f1": best_f1,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "history": history,
                    "scheduler": scheduler.state_dict(),
                    "run_id": tracker.run_id,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "arch": config.arch_kwargs(),
                    "dataset_hash": data_hash,
                },
            )
            if bad_epochs >= params.patience:
                log.info("early stop after epoch %d: no better val F1 for %d epochs", epoch + 1, bad_epochs)
                break

        # Final: the best weights, re-validated once for the threshold, PR curve and overlays.
        model.load_state_dict(best_state)
        sw = sweep(
            model,
            val_ds,
            mean=mean,
            std=std,
            device=device,
            fixed_thresholds=(0.5, params.threshold),
            keep=params.n_overlays,
            autocast_dtype=amp_dtype,
        )
        ods, ois = sw.curve.ods(), sw.curve.ois()
        f1_05 = float(f1_score(sw.fixed[0.5]))
        final_metrics = {
            "val_f1_ods": ods.f1,
            "val_threshold_ods": ods.threshold,
            "val_f1_at_0_5": f1_05,
            "val_ois": ois.f1,
            "val_precision_ods": ods.precision,
            "val_recall_ods": ods.recall,
            "best_epoch": float(best_epoch),
        }
        model_cfg = config.model_copy(
            update={
                "threshold": ods.threshold,
                "dataset_hash": data_hash,
                "git_commit": commit,
                "parent_version": parent_version,
                "metrics": final_metrics,
                "version": None,
            }
        )
        cpu_model = copy.deepcopy(model).to("cpu").to(memory_format=torch.contiguous_format)
        model_dir = save_model(cpu_model, model_cfg, out / "model")
        atomic_write_json(out / "history.json", {"history": history, "final": final_metrics})
        fig = pr_figure(sw.curve, params.threshold)
        fig.savefig(out / "pr_curve.png", dpi=100)
        tracker.log_metrics({f"final_{k}": v for k, v in final_metrics.items()})
        tracker.log_figure(fig, "plots/pr_curve.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
        for i, (rgb, probs, target) in enumerate(sw.samples):
            tracker.log_image(_overlay(rgb, probs, target, ods.threshold), f"overlays/{val_pairs[i].id}.png")
        tracker.log_artifacts(model_dir, "model")
        version = None
        if register and tracker.run_id is not None:
            version_tags = {
                **tags,
                "dataset_hash": data_hash,
                "git_commit": commit,
                "parent_version": parent_version or "none",
                "f1_ods": f"{ods.f1:.4f}",
                "f1_at_0_5": f"{f1_05:.4f}",
                "status": "candidate",
            }
            version_tags.pop("run_name", None)
            version = tracker.register("model", version_tags)
            # The local copy learns its registry version; the registered artifact keeps version=None.
            atomic_write_json(
                model_dir / "config.json",
                model_cfg.model_copy(
                    update={"version": version, "weights_sha256": _read_sha(model_dir)}
                ).model_dump(mode="json"),
            )
    return TrainResult(
        model_dir=model_dir,
        run_id=tracker.run_id,
        registered_version=version,
        best_val_f1=ods.f1,
        epochs_run=len(history),
        history=history,
        threshold=model_cfg.threshold,
        dataset_hash=data_hash,
    )


def _read_sha(model_dir: Path) -> str | None:
    from ml.checkpoint import read_config

    return read_config(model_dir).weights_sha256
