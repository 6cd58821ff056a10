# Shared set-up: config validation, chunk plans, paths and input functions used by every stage.
#
# Other stage files use: ENABLED_MODELS (list of model names), PLANS[model] (a density_engine.workflow.chunks.ModelPlan:
# num_sets, num_chunks, chunk_names, chunk_keys, chunk_stems, plan_key), MODEL_CONFIG_JSON[model] and
# CHUNK_SETTINGS[model] (rule params), densities_path(model), densities_manifest_path(model) and FINAL_TARGETS (append
# final outputs).
#
# Every per-chunk file is named chunk_NNNNN.<key>.<ext>, <key> being the chunk's content key (specs.smk).

import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from density_engine.layout import VAST_LEDGER_DIR  # the vast executor's cost ledgers, one per run (docs/vast.md)
from density_engine.workflow.chunks import (
    KEY_PATTERN,
    chunk_file_name,
    chunk_settings,
    densities_manifest_name,
    grid_file_name,
    plan_model,
    spec_file_name,
)
from density_engine.workflow.config import ConfigError, validate_config

# One clear message naming the key and the allowed values, before any job starts; then snakemake's own validation
# against the same schema (it also fills in the schema defaults).
try:
    config = validate_config(config, schema_path=Path(workflow.current_basedir) / "../schemas/config.schema.yaml", base_dir=".")
except ConfigError as _config_error:
    raise WorkflowError(f"invalid configuration: {_config_error}") from None
validate(config, "../schemas/config.schema.yaml", set_default=True)

ENABLED_MODELS = [name for name, model_cfg in config["models"].items() if model_cfg["enabled"]]
PLANS = {name: plan_model(name, config["models"][name], base_dir=".") for name in ENABLED_MODELS}
#: The model's config section as JSON: what the grid, specs, merge and report commands rebuild the plan from.
MODEL_CONFIG_JSON = {name: json.dumps(config["models"][name], sort_keys=True) for name in ENABLED_MODELS}
#: The settings every chunk of a model is simulated with, one line (simulate's params; first line of its log).
CHUNK_SETTINGS = {name: chunk_settings(name, config["models"][name]) for name in ENABLED_MODELS}

#: Final outputs of every stage; each rule file appends its own, the Snakefile's `all` rule requests them.
FINAL_TARGETS = []


wildcard_constraints:
    model="|".join(ENABLED_MODELS) or "no-model-enabled",
    chunk=r"\d{5}",
    key=KEY_PATTERN,


def spec_path(model, chunk):
    """The spec file of chunk number `chunk`; its name carries the chunk's content key (see specs.smk)."""
    return f"results/specs/{model}/{spec_file_name(chunk, PLANS[model].chunk_keys[chunk])}"


def grid_path(model):
    """The model's parameter grid parquet; its name carries the grid's content key (see specs.smk)."""
    return f"results/grid/{model}/{grid_file_name(PLANS[model].grid_key)}"


def chunk_path(model, chunk):
    """The parquet of chunk number `chunk` under the current config (the simulate rule's output)."""
    return f"results/chunks/{model}/{chunk_file_name(chunk, PLANS[model].chunk_keys[chunk])}"


def densities_path(model):
    return f"results/{model}/densities.parquet"


def densities_manifest_path(model):
    """The merge manifest beside the densities; its name carries the plan key (merge.smk)."""
    return f"results/{model}/{densities_manifest_name(PLANS[model].plan_key)}"


def model_densities_manifest(wildcards):
    """Input function: the current merge manifest of one model."""
    return densities_manifest_path(wildcards.model)


#: Hugging Face dataset folder (dataset.smk).
DATASET_DIR = "results/hf"


def dataset_manifest_path(model):
    """Per-model manifest written by dataset.smk's shards rule."""
    return f"results/dataset/manifests/{model}.json"


def _dataset_hf(key, default=""):
    """A value of the `hf:` config section (dataset.smk)."""
    value = (config.get("hf") or {}).get(key)
    return default if value is None else value


def attempt_scaled(base):
    """Resource callable: the configured base value times the attempt number."""
    return lambda wildcards, attempt: int(base) * attempt
