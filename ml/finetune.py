"""Fine-tuning a served model on user feedback: the retraining loop's recipe.

Few labelled photos of a new kind of surface must teach the model that surface without making it forget the one it
knew. The recipe, and why:

* **All labelled feedback** (the caller passes it; not only what arrived since the last retrain), each photo seen
  equally often (a shuffled cycle, not sampling with replacement).
* **Replay** of the base training data: ``replay_ratio`` of every batch comes from the base set, the rest from the
  feedback, so the base domain keeps pulling on the weights.
* **Batch-norm statistics frozen** (BN layers stay in eval mode): a batch of crops from a handful of photos is a
  poor estimate of the population statistics the champion learned, and updating them shifts every layer's input
  for the base domain too. The BN affine weights still learn (``freeze_bn_affine`` freezes them as well).
* **A lower learning rate** than training from scratch, cosine-decayed, and **steps scaled to the feedback**:
  ``steps_per_image`` × photos, clamped to ``[min_steps, max_steps]`` (the CPU budget).
* **Native-scale crops** (no resizing: a 1-px crack stays 1 px) from photos of any size; ``crack_crop_prob`` of the
  crops are centred near a crack pixel, because cracks cover < 2 % of a 1920×1080 survey photo and uniform crops
  would mostly show road. Flips, 90° rotations and brightness/contrast jitter.
* **The served threshold is re-picked on training photos, never on a judging set**: fine-tuning moves the
  probabilities (a new surface, another loss weighting), so the parent's threshold may no longer fit. With
  ``threshold: refit`` it becomes the best pooled-F1 threshold over ``threshold_crops`` uniform (not
  crack-centred, not augmented) crops of the photos it trained on, feedback and replay in the batch ratio; the
  sets that judge the challenger (held-back feedback, base evaluation set) are never seen. Crops it trained on
  are in-sample, which biases that threshold low; ``base_holdout`` (default; it falls back to ``refit`` without
  base data) instead holds a seeded
  ``threshold_holdout_fraction`` of the base photos out of the replay and picks the best pooled-F1 threshold on
  them, whole. ``parent`` keeps the parent's threshold.

The run is short and seeded, so a run cut short is simply redone (no resume state).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)


class FinetuneParams(BaseModel):
    """The fine-tuning recipe; ``finetune:`` section of a params file. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(3e-4, gt=0, description="peak learning rate (training from scratch uses 1e-3)")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(4, ge=1)
    crop_size: int = Field(256, ge=16, description="square crops at native scale (no resizing)")
    steps_per_image: float = Field(3.0, gt=0, description="optimizer steps per feedback photo")
    min_steps: int = Field(20, ge=1)
    max_steps: int = Field(200, ge=1)
    replay_ratio: float = Field(
        0.5, ge=0, lt=1, description="fraction of each batch drawn from the base data"
    )
    crack_crop_prob: float = Field(0.7, ge=0, le=1, description="fraction of crops centred near a crack")
    freeze_bn: bool = Field(True, description="keep BN running statistics fixed (BN layers in eval mode)")
    freeze_bn_affine: bool = Field(False, description="also freeze BN weight and bias")
    threshold: Literal["refit", "base_holdout", "parent"] = Field(
        "base_holdout",
        description="re-pick on training crops, on base photos held out of the replay, or keep",
    )
    threshold_holdout_fraction: float = Field(
        0.2, gt=0, lt=1, description="base photos held out of the replay for threshold: base_holdout"
    )
    threshold_crops: int = Field(96, ge=1, description="uniform training crops the threshold is re-picked on")
    pos_weight: float = Field(5.0, gt=0, description="as the default recipe trains")
    bce_weight: float = Field(1.0, ge=0)
    dice_weight: float = Field(1.0, ge=0)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] | str = "auto"
    amp: bool = True

    def steps_for(self, n_feedback: int) -> int:
        """The optimizer steps for ``n_feedback`` photos: ``steps_per_image`` each, within the budget."""
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps {self.min_steps} > max_steps {self.max_steps}")
        return max(self.min_steps, min(self.max_steps, round(self.steps_per_image * n_feedback)))

    def replay_per_batch(self, has_base: bool) -> int:
        """How many of a batch's crops come from the base data (at least one feedback crop per batch)."""
        if not has_base or self.replay_ratio == 0:
            return 0
        return min(self.batch_size - 1, max(1, round(self.replay_ratio * self.batch_size)))

    @classmethod
    def from_yaml(
        cls, path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
    ) -> FinetuneParams:
        """The ``finetune:`` section of a params file (the defaults when the file has none), then ``overrides``."""
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"cannot read params file {path}: {e}") from e
        section = raw.get("finetune", {}) if isinstance(raw, dict) else None
        if not isinstance(section, dict):
            raise ValueError(f"{path}: 'finetune:' must be a mapping")
        try:
            return cls.model_validate({**section, **(overrides or {})})
        except ValidationError as e:
            raise ValueError(f"invalid finetune params in {path}: {e}") from e


@dataclass(frozen=True)
class FinetuneResult:
    model_dir: Path
    run_id: str | None
    steps: int
    n_feedback: int
    n_replay_images: int
    seconds: float
    final_loss: float
    threshold: float


class CropSource:
    """Decoded photos of one source (feedback or base) and a seeded stream of native-scale crops from them.

    Photos come out in shuffled cycles, so every photo is used equally often. Arrays stay in memory (forty
    1920×1080 photos are ~250 MB), each mask with the flat indices of its crack pixels for crack-centred crops.
    """

    def __init__(self, pairs: Sequence[Any], crop: int, crack_prob: float, rng: np.random.Generator) -> None:
        from ml.data.imageio import read_image, read_mask

        if not pairs:
            raise ValueError("a crop source needs at least one image/mask pair")
        self.ids = [p.id for p in pairs]
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        for pair in pairs:
            image, mask = read_image(pair.image), read_mask(pair.mask)
            if image.shape[:2] != mask.shape:
                raise ValueError(
                    f"{pair.image}: image {image.shape[:2]} and mask {mask.shape} differ in size"
                )
            self.images.append(image)
            self.masks.append(mask)
        self.cracks = [np.flatnonzero(m) for m in self.masks]
        self.crop, self.crack_prob, self.rng = crop, crack_prob, rng
        self._order: list[int] = []
        self.drawn: list[int] = []  # indices in draw order (the tests read it)

    def _next_index(self) -> int:
        if not self._order:
            self._order = [int(i) for i in self.rng.permutation(len(self.images))]
        index = self._order.pop()
        self.drawn.append(index)
        return index

    def sample(self, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One crop: ``(crop, crop, 3) uint8`` image and ``(crop, crop) bool`` mask.

        ``augment=False``: a uniform crop (never crack-centred), no flips, rotations or photometric jitter.
        """
        i = self._next_index()
        image, mask, c = self.images[i], self.masks[i], self.crop
        h, w = mask.shape
        if h < c or w < c:  # pad small photos (reflect the image, no crack in the padding)
            ph, pw = max(0, c - h), max(0, c - w)
            image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
            mask = np.pad(mask, ((0, ph), (0, pw)))
            h, w = mask.shape
        if augment and len(self.cracks[i]) and self.rng.random() < self.crack_prob:
            cy, cx = divmod(int(self.rng.choice(self.cracks[i])), self.masks[i].shape[1])
            jitter = self.rng.integers(-c // 4, c // 4 + 1, size=2)
            top = int(np.clip(cy - c // 2 + jitter[0], 0, h - c))
            left = int(np.clip(cx - c // 2 + jitter[1], 0, w - c))
        else:
            top, left = int(self.rng.integers(0, h - c + 1)), int(self.rng.integers(0, w - c + 1))
        img = image[top : top + c, left : left + c]
        msk = mask[top : top + c, left : left + c]
        if not augment:
            return np.ascontiguousarray(img), np.ascontiguousarray(msk)
        if self.rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        if self.rng.random() < 0.5:
            img, msk = img[::-1], msk[::-1]
        k = int(self.rng.integers(0, 4))
        img, msk = np.rot90(img, k), np.rot90(msk, k)
        gain, bias = self.rng.uniform(0.8, 1.2), self.rng.uniform(-20, 20)
        img = np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        return img, np.ascontiguousarray(msk)


def batches(
    feedback: CropSource, base: CropSource | None, n_replay: int, batch_size: int, steps: int
) -> Iterator[tuple[Any, Any, list[str]]]:
    """``steps`` batches: images (B, 3, c, c) float in [0, 1], masks (B, 1, c, c), and each crop's source."""
    import torch

    for _ in range(steps):
        crops, sources = [], []
        for j in range(batch_size):
            use_base = base is not None and j < n_replay
            crops.append((base if use_base else feedback).sample())  # type: ignore[union-attr]
            sources.append("base" if use_base else "feedback")
        images = torch.from_numpy(np.stack([c[0] for c in crops])).permute(0, 3, 1, 2).float() / 255.0
        masks = torch.from_numpy(np.stack([c[1] for c in crops])[:, None].astype(np.float32))
        yield images, masks, sources


def refit_threshold(
    model: Any,
    feedback: CropSource,
    base: CropSource | None,
    n_replay: int,
    params: FinetuneParams,
    mean: Sequence[float],
    std: Sequence[float],
    device: Any,
) -> tuple[float, float]:
    """(threshold, F1) of the best pooled F1 over ``params.threshold_crops`` uniform crops of the training photos.

    Crops come in the training batches' feedback/replay ratio; uniform crops keep the photos' crack/background
    balance (crack-centred ones would pull the threshold down).
    """
    import torch

    from ml.evaluate import normalise
    from ml.metrics import ThresholdCurve

    curve = ThresholdCurve()
    model.eval()
    with torch.no_grad():
        done = 0
        while done < params.threshold_crops:
            n = min(params.batch_size, params.threshold_crops - done)
            crops = [
                (
                    base if base is not None and j < round(n * n_replay / params.batch_size) else feedback
                ).sample(augment=False)
                for j in range(n)
            ]
            images = torch.from_numpy(np.stack([c[0] for c in crops])).permute(0, 3, 1, 2).float() / 255.0
            target = torch.from_numpy(np.stack([c[1] for c in crops])[:, None])  # (n, 1, c, c) bool
            probs = torch.sigmoid(model(normalise(images.to(device), mean, std)).float())  # (n, 1, c, c)
            curve.update(probs.cpu(), target)
            done += n
    ods = curve.ods()
    return float(ods.threshold), float(ods.f1)


def holdout_threshold(
    model: Any, pairs: Sequence[Any], mean: Sequence[float], std: Sequence[float], device: Any
) -> tuple[float, float]:
    """(threshold, F1) of the best pooled F1 over whole photos the fine-tune never trained on."""
    from ml.data.torchdata import SegmentationDataset
    from ml.evaluate import sweep

    ods = sweep(model, SegmentationDataset(pairs), mean=mean, std=std, device=device).curve.ods()
    return float(ods.threshold), float(ods.f1)


def freeze_batchnorm(module: Any, affine: bool = False) -> int:
    """Put every BN layer in eval mode (running statistics fixed); with ``affine``, stop its weight/bias too.

    Call after ``module.train()``, which would switch them back. Returns the number of BN layers.
    """
    from torch import nn

    count = 0
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            if affine:
                for p in m.parameters():
                    p.requires_grad_(False)
            count += 1
    return count


def finetune(
    params: FinetuneParams,
    *,
    init_from: str | os.PathLike[str],
    feedback: Sequence[Any],
    base: Sequence[Any] = (),
    out_dir: str | os.PathLike[str],
    tracking_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> FinetuneResult:
    """Fine-tune the model in ``init_from`` on ``feedback`` pairs with replay of ``base`` pairs.

    Writes ``out_dir/model`` (safetensors + config.json: the parent's architecture, normalisation and threshold,
    ``parent_version`` set) and, with tracking, logs params, the loss and the model folder to an MLflow run.

    Args:
        params: the recipe.
        init_from: the parent model folder (the champion).
        feedback: labelled feedback pairs (``ml.data.datasets.Pair``); all of them are trained on.
        base: base training pairs for replay; empty disables replay.
        out_dir: work folder.
        tracking_uri: MLflow URI, ``None`` → ``MLFLOW_TRACKING_URI`` / ``./mlruns``; ``"none"`` disables tracking.
        tags: MLflow run tags; ``run_name`` names the run.

    Raises:
        ValueError: no feedback, a bad pair, or params that do not fit.
    """
    import torch

    from ml.checkpoint import load_model, save_model
    from ml.evaluate import normalise
    from ml.losses import SegmentationLoss
    from ml.tracking import open_tracker, resolve_tracking_uri
    from ml.train import pick_device
    from ml.train_loop import optimizer_step

    if not feedback:
        raise ValueError("fine-tuning needs at least one labelled feedback image")
    started = time.monotonic()
    device = pick_device(params.device)
    if params.threads:
        torch.set_num_threads(params.threads)
    parent = load_model(init_from, device="cpu")
    config = parent.config
    model = parent.module.to(device)
    rng = np.random.default_rng(params.seed)
    torch.manual_seed(params.seed)
    fb_source = CropSource(feedback, params.crop_size, params.crack_crop_prob, rng)
    threshold_pairs: list[Any] = []
    if params.threshold == "base_holdout" and len(base) >= 2:
        order = np.random.default_rng(params.seed + 7).permutation(len(base))
        n_held = max(1, round(params.threshold_holdout_fraction * len(base)))
        threshold_pairs = [base[int(i)] for i in order[:n_held]]
        base = [base[int(i)] for i in sorted(order[n_held:])]
    base_source = CropSource(base, params.crop_size, params.crack_crop_prob, rng) if base else None
    n_replay = params.replay_per_batch(base_source is not None)
    steps = params.steps_for(len(feedback))

    model.train()
    n_bn = freeze_batchnorm(model, params.freeze_bn_affine) if params.freeze_bn else 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=steps, eta_min=params.lr * params.min_lr_ratio
    )
    criterion = SegmentationLoss(params.pos_weight, params.bce_weight, params.dice_weight)
    amp_dtype = None
    if params.amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    tags = dict(tags or {})
    uri = resolve_tracking_uri(tracking_uri)
    run_params = {
        **params.model_dump(),
        "recipe": "finetune",
        "steps": steps,
        "n_feedback": len(feedback),
        "n_replay_images": len(base),
        "replay_per_batch": n_replay,
        "bn_layers_frozen": n_bn,
        "init_from": str(init_from),
        "device": str(device),
    }
    losses: list[float] = []
    with open_tracker(uri, run_name=tags.get("run_name"), tags=tags) as tracker:
        tracker.log_params(run_params)
        for step, (images, masks, _) in enumerate(
            batches(fb_source, base_source, n_replay, params.batch_size, steps), start=1
        ):
            x = normalise(images.to(device), config.mean, config.std)  # (B, 3, c, c)
            y = masks.to(device)  # (B, 1, c, c)
            losses.append(
                optimizer_step(
                    model,
                    x,
                    y,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    criterion=criterion,
                    device=device,
                    amp_dtype=amp_dtype,
                    scaler=scaler,
                    where=f"fine-tuning step {step}",
                )
            )
            if step % 10 == 0 or step == steps:
                tracker.log_metrics({"train_loss": float(np.mean(losses[-10:]))}, step=step)
                log.info("fine-tune step %d/%d: loss %.4f", step, steps, np.mean(losses[-10:]))
        model.eval()
        threshold, threshold_f1 = config.threshold, float("nan")
        if threshold_pairs:
            threshold, threshold_f1 = holdout_threshold(
                model, threshold_pairs, config.mean, config.std, device
            )
            log.info("threshold re-picked on %d held-out base photos: %.2f", len(threshold_pairs), threshold)
        elif params.threshold != "parent":
            threshold, threshold_f1 = refit_threshold(
                model, fb_source, base_source, n_replay, params, config.mean, config.std, device
            )
            log.info("threshold re-picked on training crops: %.2f (F1 %.4f)", threshold, threshold_f1)
        seconds = time.monotonic() - started
        final_loss = float(np.mean(losses[-10:]))
        # A calibration folded into the head before fine-tuning no longer describes the head: drop its record.
        parent_fields = {k: v for k, v in config.model_dump().items() if k != "calibration"}
        out_config = (
            type(config)
            .model_validate(parent_fields)
            .model_copy(
                update={
                    "threshold": threshold,
                    "parent_version": tags.get("parent_version") or config.version,
                    "version": None,
                    "metrics": {
                        "finetune_steps": float(steps),
                        "finetune_feedback_images": float(len(feedback)),
                        "finetune_replay_images": float(len(base)),
                        "finetune_final_loss": final_loss,
                        "finetune_seconds": seconds,
                        "finetune_parent_threshold": config.threshold,
                        **(
                            {
                                "finetune_threshold_fit_f1": threshold_f1,
                                "finetune_threshold_photos": len(threshold_pairs),
                            }
                            if params.threshold != "parent"
                            else {}
                        ),
                    },
                }
            )
        )
        model_dir = save_model(model.to("cpu"), out_config, Path(out_dir) / "model")
        tracker.log_metrics({"finetune_seconds": seconds, "final_train_loss": final_loss})
        tracker.log_artifacts(model_dir, "model")
    return FinetuneResult(
        model_dir=model_dir,
        run_id=tracker.run_id,
        steps=steps,
        n_feedback=len(feedback),
        n_replay_images=len(base),
        seconds=seconds,
        final_loss=final_loss,
        threshold=threshold,
    )
