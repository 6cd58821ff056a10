"""Chunks → Hugging Face dataset folder (shards, card, provenance) → the Hub.

- :mod:`~density_engine.dataset.inputs`: read and validate density tables (chunk parquet contract).
- :mod:`~density_engine.dataset.shards`: stable, deterministic shards per model + a manifest.
- :mod:`~density_engine.dataset.checks`: the data must be the configured grid (param_ids, horizons, ranges).
- :mod:`~density_engine.dataset.card`: README.md (YAML front matter + prose) and provenance.json.
- :mod:`~density_engine.dataset.build`: the build steps the CLI and the Snakemake rules call.
- :mod:`~density_engine.dataset.publish`: idempotent publishing with huggingface_hub.
"""
