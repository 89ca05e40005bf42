"""The pieces of one training run that ``ml.train.train`` strings together: the epoch's sampler and loader, one
epoch of optimisation, and the end of the run (re-validate the best weights, save, log, register)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def epoch_loader(
    dataset: Any,
    *,
    seed: int,
    epoch: int,
    steps: int,
    batch_size: int,
    weights: Sequence[float] | None,
    num_workers: int,
    pin_memory: bool,
) -> Any:
    """A loader of exactly ``steps`` batches drawn with replacement (uniformly, or by ``weights`` per pair).

    Reseeding per epoch makes a resumed run replay exactly the batches of an uninterrupted one.
    """
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler

    torch.manual_seed(seed * 100_003 + epoch)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    n_samples = steps * batch_size
    w = list(weights or [])
    # Feedback folders (extra_data) come after the weighted pairs: they share the mean weight.
    if w and len(w) < len(dataset):
        w += [float(np.mean(w))] * (len(dataset) - len(w))
    sampler: Any = (
        WeightedRandomSampler(w, n_samples, replacement=True, generator=generator)
        if w
        else RandomSampler(dataset, replacement=True, num_samples=n_samples, generator=generator)
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=generator,
    )


def optimizer_step(
    model: Any,
    images: Any,
    masks: Any,
    *,
    optimizer: Any,
    scheduler: Any,
    criterion: Any,
    device: Any,
    amp_dtype: Any,
    scaler: Any,
    where: str,
) -> float:
    """One optimisation step on a normalised batch (autocast + GradScaler on CUDA); returns the loss.

    Raises:
        FloatingPointError: the loss is not finite (``where`` says which epoch or step).
    """
    import torch

    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(
        device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
    ):
        logits = model(images)
    loss = criterion(logits.float(), masks)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()} ({where}): lower lr")
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    scheduler.step()
    return float(loss.item())


class WeightEMA:
    """An exponential moving average of a model's weights *and* buffers (BatchNorm running statistics included).

    After every optimizer step ``update`` moves each floating-point tensor of ``module`` towards the trained model's:
    ``ema = d·ema + (1 − d)·current`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    average follows the weights closely at first and then smooths the last ~``1 / (1 − decay)`` steps. The BN
    running statistics are averaged with the weights, so the average is evaluated with statistics of the same
    span rather than those of the last ~20 batches. Integer buffers (``num_batches_tracked``) are copied.
    ``updates`` counts the updates so far (a resumed run restores it).
    """

    def __init__(self, model: Any, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def rate(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def update(self, model: Any) -> None:
        import torch

        d = self.rate()
        with torch.no_grad():
            current = model.state_dict()
            for name, avg in self.module.state_dict().items():
                now = current[name].detach()
                if avg.dtype.is_floating_point:
                    avg.lerp_(now.to(avg.dtype), 1.0 - d)
                else:
                    avg.copy_(now)
        self.updates += 1


def fit_epoch(
    model: Any,
    loader: Any,
    *,
    optimizer: Any,
    scheduler: Any,
    criterion: Any,
    device: Any,
    mean: Sequence[float],
    std: Sequence[float],
    amp_dtype: Any,
    scaler: Any,
    desc: str,
    ema: WeightEMA | None = None,
) -> float:
    """One pass over ``loader``: forward, loss, backward, step (then the ``ema`` update); returns the mean loss."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from ml.evaluate import normalise

    model.train()
    losses: list[float] = []
    bar = tqdm(loader, desc=desc, unit="step", leave=False, disable=None)
    for images, masks in bar:
        images = normalise(images.to(device, non_blocking=True), mean, std)  # (B, 3, crop, crop)
        masks = masks.to(device, non_blocking=True)  # (B, 1, crop, crop)
        images = images.contiguous(memory_format=torch.channels_last)
        losses.append(
            optimizer_step(
                model,
                images,
                masks,
                optimizer=optimizer,
                scheduler=scheduler,
                criterion=criterion,
                device=device,
                amp_dtype=amp_dtype,
                scaler=scaler,
                where=desc,
            )
        )
        if ema is not None:
            ema.update(model)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    bar.close()
    return float(np.mean(losses))


def overlay(rgb: Any, probs: Any, target: Any, threshold: float) -> Any:
    """Green = true positive, red = false positive, blue = missed crack, over the dimmed image."""
    import numpy as np

    pred = probs >= threshold
    out = (rgb.astype(np.float32) * 0.6).astype(np.uint8)
    out[pred & target] = (0, 255, 0)
    out[pred & ~target] = (255, 0, 0)
    out[~pred & target] = (0, 128, 255)
    return out


def finish_run(
    *,
    model: Any,
    config: Any,
    val_ds: Any,
    val_ids: Sequence[str],
    params: Any,
    device: Any,
    amp_dtype: Any,
    tracker: Any,
    out: Path,
    history: list[dict[str, float]],
    best_epoch: int,
    data_hash: str,
    commit: str,
    parent_version: str | None,
    tags: Mapping[str, str],
    register: bool,
) -> tuple[Path, Any, dict[str, float], str | None]:
    """Re-validate the best weights once (threshold, PR curve, overlays), save ``out/model``, log and register.

    Returns ``(model_dir, model_config, final_metrics, registered_version)``.
    """
    import matplotlib.pyplot as plt
    import torch

    from ml.checkpoint import read_config, save_model
    from ml.evaluate import pr_figure, sweep
    from ml.fsutil import atomic_write_json
    from ml.metrics import f1_score

    sw = sweep(
        model,
        val_ds,
        mean=config.mean,
        std=config.std,
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
    plt.close(fig)
    for i, (rgb, probs, target) in enumerate(sw.samples):
        tracker.log_image(overlay(rgb, probs, target, ods.threshold), f"overlays/{val_ids[i]}.png")
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
                update={"version": version, "weights_sha256": read_config(model_dir).weights_sha256}
            ).model_dump(mode="json"),
        )
    return model_dir, model_cfg, final_metrics, version
