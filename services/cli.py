"""The ``crackseg`` command. Each component registers its own subcommands here.

Component CLI modules must stay light at import time (no torch, no kserve, no streamlit): heavy imports go inside
the command functions, so ``crackseg retrain trigger`` and ``crackseg ui`` run in images without torch.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="crackseg",
    help="Crack segmentation: train, evaluate, serve, inspect, and retrain from feedback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines ``register(app: typer.Typer) -> None``.
COMPONENTS = [
    "services.predictor.cli",
    "ml.data.cli",
    "ml.cli",
    "services.up.cli",
    "services.ui.cli",
    "services.batch.cli",
    "services.retrain.cli",
    "services.retrain.bench_cli",
]

for _module in COMPONENTS:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
