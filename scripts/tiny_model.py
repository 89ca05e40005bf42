"""Save a tiny random Attention U-Net checkpoint (base width 4, depth 2) for image and monitoring tests.

usage: python scripts/tiny_model.py OUT_DIR [VERSION]
"""

from __future__ import annotations

import sys

import torch

from ml.checkpoint import ModelConfig, save_model
from ml.models import create_model


def main(out_dir: str, version: str = "1") -> None:
    torch.manual_seed(0)
    config = ModelConfig(base_width=4, depth=2, version=version)
    save_model(create_model(config.arch, **config.arch_kwargs()), config, out_dir)
    print(f"saved tiny model v{version} to {out_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
