"""Resume state of a training run: ``out_dir/checkpoint/`` holds the last and best weights, the optimizer state,
the weight average (``ema.safetensors``, when the run keeps one) and ``state.json`` (epoch, scheduler, best score,
history, MLflow run id), swapped in atomically after every epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
EMA_FILE = "ema.safetensors"


def state_dict_cpu(module: Any) -> dict[str, Any]:
    """A detached, contiguous CPU copy of ``module``'s state dict (safe to keep while training goes on)."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    ckpt_dir: Path,
    *,
    last: dict[str, Any],
    best: dict[str, Any],
    optimizer: Any,
    state: dict[str, Any],
    ema: dict[str, Any] | None = None,
) -> None:
    """Write the resume folder atomically: built beside it, then swapped in (a crash leaves the old one)."""
    import torch
    from safetensors.torch import save_file

    from ml.fsutil import atomic_dir, atomic_write_json

    with atomic_dir(ckpt_dir) as staging:
        save_file(last, str(staging / "last.safetensors"))
        save_file(best, str(staging / "best.safetensors"))
        if ema is not None:
            save_file(ema, str(staging / EMA_FILE))
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        atomic_write_json(staging / STATE_FILE, state)


def load_checkpoint(
    ckpt_dir: Path, device: Any
) -> tuple[dict[str, Any], dict[str, Any], Any, dict[str, Any]]:
    """``(last weights, best weights, optimizer state, state.json)`` of a resume folder."""
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


def load_ema(ckpt_dir: Path) -> dict[str, Any] | None:
    """The weight average a resume folder holds, or ``None`` when its run kept none."""
    from safetensors.torch import load_file

    path = ckpt_dir / EMA_FILE
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except (OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"cannot resume from {ckpt_dir}: {e}") from e
