"""ML subcommands: train, eval, bench, starter-model, prepare, export-onnx. Torch is imported inside the commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_PARAMS = Path("params.yaml")


def _datasets_root() -> Path:
    return Path(os.environ.get("CRACKSEG_DATASETS", "../shared/datasets"))


def _parse_overrides(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def train_cmd(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="params file with a train: section")
    ] = DEFAULT_PARAMS,
    data: Annotated[
        Path | None, typer.Option(help="dataset root (default: $CRACKSEG_DATASETS/crackforest)")
    ] = None,
    out: Annotated[Path, typer.Option(help="work folder; the checkpoint lands in OUT/model")] = Path(
        "state/train"
    ),
    init_from: Annotated[Path | None, typer.Option(help="checkpoint folder to fine-tune from")] = None,
    extra_data: Annotated[
        list[Path] | None, typer.Option(help="extra images/+masks/ folder (repeatable)")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI, or 'none' (default: $MLFLOW_TRACKING_URI)")
    ] = None,
    register: Annotated[bool, typer.Option(help="register a version of the 'crackseg' model")] = True,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint")] = False,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE run/version tag (repeatable)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a train param: KEY=VALUE")] = None,
) -> None:
    """Train an Attention U-Net from params.yaml, log to MLflow and register the best checkpoint."""
    import logging

    from ml.train import TrainParams, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = TrainParams.from_yaml(config, _parse_overrides(set_ or []))
        result = train(
            params,
            data_root=data or _datasets_root() / "crackforest",
            out_dir=out,
            init_from=init_from,
            tracking_uri=tracking_uri,
            register=register,
            extra_data=extra_data or [],
            tags=_parse_overrides(tag or []),
            resume=resume,
        )
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(
        f"model: {result.model_dir}\nbest val F1 (ODS): {result.best_val_f1:.4f} at threshold "
        f"{result.threshold:.2f}\nepochs: {result.epochs_run}\nrun: {result.run_id or '-'}\n"
        f"registered version: {result.registered_version or '-'}"
    )


def train_default_cmd(
    seed: Annotated[list[int] | None, typer.Option(help="seed (repeatable; default 0 1 2)")] = None,
    out: Annotated[Path, typer.Option(help="work folder; seed N trains into OUT/seedN")] = Path(
        "state/train-default"
    ),
    recipe: Annotated[
        Path | None, typer.Option(help="recipe YAML (default: ml/recipes/default.yaml)")
    ] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow URI, or 'none'")] = "none",
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a train param: KEY=VALUE")] = None,
    jobs: Annotated[
        int,
        typer.Option(min=1, help="seeds trained side by side, each in its own process (log: OUT/seedN.log)"),
    ] = 1,
    cache: Annotated[
        Path, typer.Option(help="where the recipe's synthetic samples are generated once")
    ] = Path("state/cache"),
    ship: Annotated[
        Path | None,
        typer.Option(
            help="copy the seed with the best validation P1 into this model folder, with seeds.json, "
            "and render its MODEL_CARD.md"
        ),
    ] = None,
) -> None:
    """Train the default model's recipe for each seed (resumable), calibrate, and report mean ± std."""
    import logging

    from ml.fsutil import atomic_write_json
    from ml.recipe import (
        DEFAULT_RECIPE,
        DEFAULT_RECIPE_FILE,
        Recipe,
        effective_recipe,
        ship_best_seed,
        summarise_seeds,
        train_default,
        train_seeds_side_by_side,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    seeds = seed or [0, 1, 2]
    try:
        if jobs > 1 and len(seeds) > 1:
            extra = ["--tracking-uri", tracking_uri, "--cache", str(cache)]
            extra += [a for kv in set_ or [] for a in ("--set", kv)]
            train_seeds_side_by_side(
                recipe or DEFAULT_RECIPE, seeds, out_dir=out, jobs=jobs, extra_args=extra, cache_dir=cache
            )
        # Seeds trained above are finished: this only reads their summaries.
        spec = Recipe.load(recipe or DEFAULT_RECIPE)
        summaries = [
            train_default(
                spec,
                seed=s,
                out_dir=out / f"seed{s}",
                datasets_root=_datasets_root(),
                tracking_uri=tracking_uri,
                overrides=_parse_overrides(set_ or []),
                cache_dir=cache,
            )
            for s in seeds
        ]
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    agg = summarise_seeds(summaries)
    asked = effective_recipe(spec, _parse_overrides(set_ or []))
    doc = {
        "seeds": seeds,
        "summary": agg,
        "runs": summaries,
        "recipe": asked,
        "recipe_file": str(recipe) if recipe else DEFAULT_RECIPE_FILE,
    }
    atomic_write_json(out / "seeds.json", doc)
    for key, v in agg.items():
        typer.echo(f"{key:<22} {v['mean']:.4f} ± {v['std']:.4f}  (n={int(v['n'])})")
    if ship is not None:
        from ml.model_card import write_card

        try:
            shipped = ship_best_seed(doc, out, ship)
            card = write_card(ship, ship / "seeds.json")
        except (OSError, ValueError, KeyError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        typer.echo(f"shipped seed {shipped} to {ship} (card: {card})")


def model_card_cmd(
    model: Annotated[Path, typer.Option(help="model directory to write MODEL_CARD.md into")] = Path(
        "models/default"
    ),
    seeds: Annotated[Path, typer.Option(help="seeds.json written by crackseg train-default")] = Path(
        "state/train-default/seeds.json"
    ),
    variants: Annotated[
        Path | None,
        typer.Option(help="variants.json of crackseg variants (default: MODEL/variants.json when it exists)"),
    ] = None,
) -> None:
    """Render MODEL_CARD.md from the model's config.json, the seeds' summary (mean ± std) and the variant table."""
    from ml.model_card import write_card

    try:
        out = write_card(model, seeds, variants)
    except (OSError, ValueError, KeyError) as e:
        typer.echo(f"error: cannot write the model card: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"model card written to {out}")


def variants_cmd(
    screening: Annotated[
        Path | None, typer.Option(help="screening YAML (default: ml/recipes/variants/screening.yaml)")
    ] = None,
    out: Annotated[Path, typer.Option(help="work folder; variant NAME trains into OUT/NAME")] = Path(
        "state/variants"
    ),
    only: Annotated[list[str] | None, typer.Option(help="train only this variant (repeatable)")] = None,
    table: Annotated[Path, typer.Option(help="where the measured table goes")] = Path(
        "models/default/variants.json"
    ),
    measure: Annotated[
        bool, typer.Option(help="after training, measure every variant and write --table")
    ] = True,
) -> None:
    """Screen width/depth/loss variants of the default recipe (one seed, equal budget; resumable) → a table."""
    import logging

    from ml.variants import DEFAULT_SCREENING, run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(
            screening or DEFAULT_SCREENING,
            out_root=out,
            datasets_root=_datasets_root(),
            table=table if measure else None,
            only=only or [],
            progress=typer.echo,
        )
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def eval_cmd(
    model: Annotated[
        str, typer.Option(help="checkpoint folder or models:/crackseg@champion | models:/crackseg/N")
    ] = "models/default",
    data: Annotated[
        Path | None,
        typer.Option(help="split.json root, <split>/images root, or images/+masks/ folder (omit with --val)"),
    ] = None,
    split: Annotated[str, typer.Option(help="split name; 'all' for every pair")] = "all",
    val: Annotated[
        bool,
        typer.Option(
            "--val", help="the fixed validation set of the default recipe (DeepCrack + CFD val ids)"
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="write the JSON report here (atomically)")] = None,
    plot: Annotated[Path | None, typer.Option(help="write the PR-curve plot (PNG) here")] = None,
    tile_size: Annotated[
        int | None, typer.Option(help="tile side for large photos (default: the model's)")
    ] = None,
    tolerance: Annotated[
        int, typer.Option(help="also report F1 with a K-pixel tolerance (labelled apart; 0 = off)", min=0)
    ] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads")] = None,
) -> None:
    """Evaluate a model: P1 (ODS), P2, OIS, AP, F1 at 0.5 and at the served threshold, and a per-image table.

    All numbers are pixel-exact (no distance tolerance). Photos larger than the tile size are evaluated through
    the same tiled path that serving uses.
    """
    import torch

    from ml.evaluate import evaluate
    from ml.fsutil import atomic_write_json

    if threads:
        torch.set_num_threads(threads)
    if val == (data is not None):
        typer.echo("error: give either --data DIR (with --split) or --val", err=True)
        raise typer.Exit(2)
    try:
        pairs = None
        if val:
            from ml.recipe import Recipe, validation_pairs

            pairs, split = validation_pairs(Recipe.load(), _datasets_root()), "val"
        report = evaluate(
            model,
            data or _datasets_root(),
            split=None if split == "all" else split,
            device=device,
            progress=True,
            tile_size=tile_size,
            pairs=pairs,
            plot=plot,
            tolerance=tolerance,
        )
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(report.table())
    if out is not None:
        atomic_write_json(out, report.to_dict())
        typer.echo(f"\nreport written to {out}")


def bench_cmd(
    threads: Annotated[int, typer.Option(help="torch intra-op threads")] = 2,
    quick: Annotated[bool, typer.Option(help="fewer repeats")] = False,
    widths: Annotated[str, typer.Option(help="comma-separated base widths")] = "8,16,32,64",
    train_width: Annotated[int, typer.Option(help="base width for the training throughput")] = 16,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("benchmarks/results"),
) -> None:
    """Forward latency, params and GFLOPs per width and input size; training images/s."""
    from ml.bench import markdown, run_bench, write_results

    try:
        width_list = [int(w) for w in widths.split(",") if w.strip()]
    except ValueError as e:
        raise typer.BadParameter(f"--widths takes integers like 8,16,32: {e}") from e
    report = run_bench(
        widths=width_list, threads=threads, quick=quick, train_width=train_width, progress=typer.echo
    )
    json_path, md_path = write_results(report, out)
    typer.echo("\n" + markdown(report))
    typer.echo(f"written: {json_path}, {md_path}")


def starter_cmd(
    out: Annotated[Path, typer.Option(help="where the checkpoint goes")] = Path("models/starter"),
    steps: Annotated[int, typer.Option(help="total optimizer steps (the training budget)")] = 500,
    steps_per_epoch: Annotated[int, typer.Option(help="steps between validations")] = 100,
    base_width: Annotated[int, typer.Option(help="8 or 16 keeps it small")] = 8,
    depth: Annotated[int, typer.Option()] = 4,
    height: Annotated[int, typer.Option(help="synthetic image height")] = 320,
    width: Annotated[int, typer.Option(help="synthetic image width")] = 480,
    n_images: Annotated[int, typer.Option(help="synthetic images to generate")] = 320,
    batch_size: Annotated[int, typer.Option()] = 16,
    crop_size: Annotated[int, typer.Option()] = 256,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    num_workers: Annotated[int, typer.Option(help="data loader workers; -1: 8 on CUDA, 0 on CPU")] = -1,
    workdir: Annotated[Path, typer.Option(help="synthetic data and training state")] = Path("state/starter"),
    tracking_uri: Annotated[str, typer.Option(help="MLflow URI; 'none' by default")] = "none",
    eval_data: Annotated[Path | None, typer.Option(help="dataset root to report zero-shot F1 on")] = None,
    eval_split: Annotated[str, typer.Option()] = "test",
) -> None:
    """Train the starter model on synthetic cracks only (clean licence); optionally report zero-shot F1.

    The defaults are the recipe of the committed starter (4000 steps of batch 16 on 1200 synthetic images: about
    5 minutes on one H100); on a CPU pass a smaller budget, e.g. --steps 400 --batch-size 8.
    """
    import logging

    from ml.starter import StarterParams, train_starter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = StarterParams(
            steps=steps,
            steps_per_epoch=steps_per_epoch,
            num_workers=num_workers if num_workers >= 0 else _auto_workers(device),
            base_width=base_width,
            depth=depth,
            height=height,
            width=width,
            n_images=n_images,
            batch_size=batch_size,
            crop_size=crop_size,
            seed=seed,
            device=device,
        )
        summary = train_starter(
            params,
            out=out,
            workdir=workdir,
            tracking_uri=tracking_uri,
            eval_data=eval_data,
            eval_split=None if eval_split == "all" else eval_split,
        )
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(json.dumps(summary, indent=2))


def _auto_workers(device: str) -> int:
    import torch

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return min(8, os.cpu_count() or 1) if cuda else 0


def prepare_cmd(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="params file with a prepare: section")
    ] = DEFAULT_PARAMS,
    out: Annotated[Path, typer.Option(help="output dataset root")] = Path("data/prepared"),
) -> None:
    """DVC 'prepare' stage: copy a dataset (params prepare.source) or generate a synthetic one, with split.json."""
    from ml.prepare import PrepareParams, prepare

    try:
        params = PrepareParams.from_yaml(config)
        n = prepare(params, out)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"prepared {n} pairs in {out}")


def export_onnx_cmd(
    model_dir: Annotated[Path, typer.Argument(help="checkpoint folder (config.json + model.safetensors)")],
    check: Annotated[
        list[Path] | None,
        typer.Option(help="photo to compare PyTorch and ONNX Runtime on (repeatable); prints the parity"),
    ] = None,
) -> None:
    """Add model.onnx (fp32, dynamic size) to a checkpoint folder saved before exports existed."""
    from ml.data.imageio import ImageDecodeError, read_image
    from ml.export import export_model_dir, parity

    try:
        path = export_model_dir(model_dir)
        images = [read_image(p) for p in check or []]
    except (FileNotFoundError, ValueError, ImageDecodeError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"wrote {path}")
    if images:
        result = parity(model_dir, images)
        typer.echo(
            json.dumps(
                {"images": result.images, "max_abs_diff": result.max_abs_diff, "mask_iou": result.mask_iou}
            )
        )


def register(app: typer.Typer) -> None:
    """Add the ML commands to the ``crackseg`` app."""
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
    app.command("train-default")(train_default_cmd)
    app.command("model-card")(model_card_cmd)
    app.command("variants")(variants_cmd)
    app.command("bench")(bench_cmd)
    app.command("starter-model")(starter_cmd)
    app.command("prepare")(prepare_cmd)
    app.command("export-onnx")(export_onnx_cmd)
