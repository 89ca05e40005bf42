"""``crackseg data …``: download public datasets, generate synthetic ones, check integrity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(
    help="Datasets: download public ones, generate synthetic ones, check integrity.", no_args_is_help=True
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@data_app.command("check")
def check(
    root: Annotated[
        Path, typer.Argument(help="Dataset root (split.json, images/+masks/, or <split>/images).")
    ],
    split: Annotated[
        str | None, typer.Option(help="Split to check (train, test); default: all pairs.")
    ] = None,
) -> None:
    """Decode every pair, report counts and the crack pixel fraction; exit 1 listing every bad file."""
    from ml.data.datasets import (
        DatasetIntegrityError,
        available_splits,
        check_integrity,
        dataset_hash,
        discover,
    )

    try:
        pairs = discover(root, split)
        report = check_integrity(pairs)
    except DatasetIntegrityError as e:
        raise _fail(str(e)) from e
    except ValueError as e:
        raise _fail(str(e), 2) from e
    splits = available_splits(root)
    typer.echo(f"root:           {root}")
    typer.echo(f"split:          {split or 'all'}" + (f" (available: {', '.join(splits)})" if splits else ""))
    typer.echo(f"pairs:          {report.n_pairs}")
    sizes = ", ".join(f"{w}x{h}: {n}" for (h, w), n in sorted(report.sizes.items()))
    typer.echo(f"sizes (WxH):    {sizes}")
    typer.echo(
        f"crack fraction: {report.crack_fraction:.4f} ({report.crack_pixels} of {report.total_pixels} px)"
    )
    typer.echo(f"dataset hash:   {dataset_hash(pairs)}")


@data_app.command("synth")
def synth(
    n: Annotated[int, typer.Option(min=1, help="Number of samples.")] = 200,
    out: Annotated[Path, typer.Option(help="Output folder (images/ and masks/ are created).")] = Path(
        "data/synthetic"
    ),
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same files.")] = 0,
    height: Annotated[int, typer.Option(min=32)] = 320,
    width: Annotated[int, typer.Option(min=32)] = 480,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes to generate with (same files for any value).")
    ] = 1,
) -> None:
    """Generate procedural cracks on pavement textures (masks: 0/255 PNG)."""
    from ml.data.datasets import check_integrity, discover
    from ml.data.synthetic import generate

    ids = generate(n, out, size=(height, width), seed=seed, workers=workers)
    report = check_integrity([p for p in discover(out) if p.id in set(ids)])
    typer.echo(f"wrote {len(ids)} pairs to {out} (crack fraction {report.crack_fraction:.4f})")


@data_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="crackforest or deepcrack")],
    dest: Annotated[Path, typer.Option(help="Parent folder; the dataset lands in DEST/NAME.")] = Path("data"),
    url: Annotated[str | None, typer.Option(help="Download from this URL instead (a mirror).")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Expected sha256 of the archive; enforced when given.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace DEST/NAME if it exists.")] = False,
) -> None:
    """Download a public dataset (resumable, checksummed) and convert it to crackseg's folder layout."""
    from ml.data.fetch import ChecksumError, DownloadError
    from ml.data.sources import fetch as fetch_dataset
    from ml.data.sources import get_source

    try:
        source = get_source(name)
    except ValueError as e:
        raise _fail(str(e), 2) from e
    typer.echo(f"{source.name}: licence: {source.licence}")
    typer.echo(f"downloading {url or source.url}")
    state = {"shown": -1}

    def progress(done: int, total: int | None) -> None:
        mib = done >> 20
        if mib != state["shown"]:
            state["shown"] = mib
            typer.echo(f"\r  {mib} MiB" + (f" of {total >> 20} MiB" if total else ""), nl=False, err=True)

    try:
        result = fetch_dataset(name, dest, url=url, sha256=sha256, force=force, progress=progress)
    except (ChecksumError, DownloadError, ValueError) as e:
        typer.echo("", err=True)
        raise _fail(str(e)) from e
    typer.echo("", err=True)
    typer.echo(f"sha256 {result.sha256} (recorded in {result.root / 'SOURCE.json'}; pin it with --sha256)")
    counts = ", ".join(f"{split}: {count}" for split, count in result.counts.items())
    typer.echo(f"converted to {result.root} ({counts})")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
