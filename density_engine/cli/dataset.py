"""`density-engine dataset ...`: build the Hugging Face dataset folder and publish it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click

DEFAULT_FOLDER = "results/hf"


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("dataset")
def dataset() -> None:
    """Build the Hugging Face dataset folder (shards, card, provenance) and publish it to the Hub."""


@dataset.command("shards")
@click.option("--model", required=True, help="Model name; every input must hold rows of this model.")
@click.option("--out", "folder", default=DEFAULT_FOLDER, show_default=True, type=click.Path(file_okay=False))
@click.option("--manifest", required=True, type=click.Path(dir_okay=False), help="Where to write the model manifest.")
@click.option("--params-per-shard", type=click.IntRange(min=1), help="Shard width in parameter sets (default: auto).")
@click.option(
    "--densities-manifest",
    type=click.Path(dir_okay=False),
    help="The merge manifest of the (single) densities input: its sha256 must match (an edited file is refused).",
)
@click.option("--model-config", help="The model's config section as JSON: the data must be exactly its grid.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
def shards_command(
    model: str,
    folder: str,
    manifest: str,
    params_per_shard: int | None,
    densities_manifest: str | None,
    model_config: str | None,
    inputs: tuple[str, ...],
) -> None:
    """Validate INPUTS (merged densities or chunk parquet files) and write data/<model>/ shards + a manifest.

    Every check (the merge manifest's sha256, the column contract, complete horizons, the configured grid) runs before
    anything is written, so a failure leaves the dataset folder as it was."""
    from density_engine.dataset.build import build_model
    from density_engine.workflow.merge import verify_densities

    try:
        if densities_manifest:
            if len(inputs) != 1:
                raise ValueError("--densities-manifest needs exactly one input (the densities file it describes)")
            verify_densities(inputs[0], densities_manifest)
        config = json.loads(model_config) if model_config else None
        result = build_model(model, inputs, folder, manifest, params_per_shard, model_config=config)
    except ValueError as exc:  # also MergeError, DatasetInputError and JSONDecodeError
        raise _fail(exc) from exc
    click.echo(f"{model}: {result.rows} rows, {result.param_sets} parameter sets -> {len(result.shards)} shard(s)")


def _load_config(config_path: str | None, config_json: str | None) -> dict | None:
    from density_engine.dataset.build import check_config, read_config

    if config_path and config_json:
        raise click.UsageError("give --config or --config-json, not both")
    if config_json is None:
        return read_config(config_path)
    try:
        return check_config(json.loads(config_json), "--config-json")
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config-json: not valid JSON ({exc})") from exc


@dataset.command("card")
@click.option("--out", "folder", default=DEFAULT_FOLDER, show_default=True, type=click.Path(file_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Workflow config (ranges, hf keys).")
@click.option("--config-json", help="The workflow config's models and hf sections as JSON (what Snakemake passes).")
@click.argument("manifests", nargs=-1, required=True, type=click.Path(dir_okay=False))
def card_command(folder: str, config_path: str | None, config_json: str | None, manifests: tuple[str, ...]) -> None:
    """Write README.md and provenance.json for the models of MANIFESTS, after checking that the folder holds exactly
    their shards and that the data is the configured grid; then remove other models' shards and their manifests
    (beside MANIFESTS)."""
    from density_engine.dataset.build import build_card
    from density_engine.dataset.shards import ModelManifest

    try:
        loaded = [ModelManifest.load(path) for path in manifests]
        manifest_dirs = sorted({str(Path(path).parent) for path in manifests})
        readme, provenance = build_card(folder, loaded, _load_config(config_path, config_json), manifest_dirs)
    except ValueError as exc:
        raise _fail(exc) from exc
    click.echo(f"wrote {readme} and {provenance}")


@dataset.command("build")
@click.option("--out", "folder", default=DEFAULT_FOLDER, show_default=True, type=click.Path(file_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Workflow config (ranges, hf keys).")
@click.option("--params-per-shard", type=click.IntRange(min=1), help="Shard width in parameter sets (default: auto).")
@click.option("--manifest-dir", type=click.Path(file_okay=False), help="Also keep the per-model manifests here.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
def build_command(
    folder: str,
    config_path: str | None,
    params_per_shard: int | None,
    manifest_dir: str | None,
    inputs: tuple[str, ...],
) -> None:
    """Build the whole dataset folder from INPUTS (density files of any models, grouped by their model column)."""
    from density_engine.dataset.build import build_dataset, read_config

    try:
        manifests = build_dataset(inputs, folder, read_config(config_path), params_per_shard, manifest_dir)
    except ValueError as exc:
        raise _fail(exc) from exc
    for m in manifests:
        click.echo(f"{m.model}: {m.rows} rows, {m.param_sets} parameter sets -> {len(m.shards)} shard(s)")
    click.echo(f"wrote {Path(folder) / 'README.md'}")


@dataset.command("publish")
@click.option("--folder", default=DEFAULT_FOLDER, show_default=True, type=click.Path(file_okay=False, exists=True))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Workflow config; its hf section.")
@click.option("--repo-id", help="Dataset repo 'owner/name' (overrides hf.repo_id).")
@click.option("--tag", help="Release tag (overrides hf.tag).")
@click.option("--revision", help="Branch to publish to (overrides hf.revision; default main).")
@click.option("--private/--public", "private", default=None, help="Visibility (overrides hf.private).")
@click.option("--dry-run", is_flag=True, help="Print what would be uploaded/deleted/tagged; change nothing.")
@click.option("--result", type=click.Path(dir_okay=False), help="Write the outcome (repo, commit, tag) as JSON here.")
def publish_command(
    folder: str,
    config_path: str | None,
    repo_id: str | None,
    tag: str | None,
    revision: str | None,
    private: bool | None,
    dry_run: bool,
    result: str | None,
) -> None:
    """Publish the dataset folder to the Hub (token from HF_TOKEN; endpoint from HF_ENDPOINT)."""
    from density_engine.atomic import write_bytes_atomic
    from density_engine.dataset.build import read_config
    from density_engine.dataset.publish import PublishError, publish_dataset

    try:
        hf = (read_config(config_path) or {}).get("hf") or {}
    except ValueError as exc:
        raise _fail(exc) from exc
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpx2"):  # one INFO line per HTTP request otherwise (-vv shows them)
            logging.getLogger(name).setLevel(logging.WARNING)
    repo_id = repo_id or hf.get("repo_id")
    if not repo_id:
        raise click.UsageError("no dataset repo: set hf.repo_id in the config or pass --repo-id")
    try:
        outcome = publish_dataset(
            folder,
            repo_id,
            revision=revision or hf.get("revision") or "main",
            tag=tag or hf.get("tag"),
            private=private if private is not None else hf.get("private"),
            dry_run=dry_run,
            endpoint=os.environ.get("HF_ENDPOINT") or None,
            echo=click.echo,
        )
    except PublishError as exc:
        raise _fail(exc) from exc
    if result and not dry_run:
        write_bytes_atomic(Path(result), (json.dumps(outcome.to_dict(), indent=2, sort_keys=True) + "\n").encode())


COMMANDS: list[click.Command] = [dataset]
