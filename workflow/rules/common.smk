# Shared set-up: config validation, chunk plans, paths and input functions used by every stage.
#
# Other stage files use: MODEL_NAMES (every registered model: the per-model target rules), ENABLED_MODELS,
# PLANS[model] (a density_engine.workflow.chunks.ModelPlan: num_sets, num_chunks, chunk_names, chunk_keys,
# chunk_stems, grid_key, plan_key), MODEL_CONFIG_JSON[model] and CHUNK_SETTINGS[model] (rule params), the path
# helpers and input functions below, and FINAL_TARGETS (append final outputs).
#
# Rule names do not depend on the config, except the per-model merge (merge.smk), spec batch (specs.smk) and shard
# rules (dataset.smk: each shard file is an explicit output, named from the model's config):
# the other rules are wildcard rules over {model} (constrained to the enabled models) and, for files named after a
# content key, {key}. Every per-chunk file is named chunk_NNNNN.<key>.<ext>, <key> being the chunk's content key
# (specs.smk).

import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from density_engine.dataset.layout import id_runs, planned_shard_names
from density_engine.layout import CHUNK_MANIFEST_SUFFIX, QUARANTINE_DIR, VAST_LEDGER_DIR
from density_engine.models import model_names
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
from density_engine.workflow.estimate import estimate_run
from density_engine.workflow.hardware import nvidia_gpu_count

# One clear message naming the key and the allowed values (or, for an impossible or absurd run size, the limit), before
# any job starts; then snakemake's own validation against the same schema (it also fills in the schema defaults).
try:
    config = validate_config(config, schema_path=workflow.source_path("../schemas/config.schema.yaml"), base_dir=".")
except ConfigError as _config_error:
    raise WorkflowError(f"invalid configuration: {_config_error}") from None
validate(config, "../schemas/config.schema.yaml", set_default=True)

#: Every registered model: each has a target rule of its name (Snakefile), enabled or not.
MODEL_NAMES = model_names()
ENABLED_MODELS = [name for name, model_cfg in config["models"].items() if model_cfg["enabled"]]
# A large run says how large before Snakemake plans it (stderr: `snakemake --dag | dot` stays clean).
_RUN_SIZE = estimate_run(config, ".")
if _RUN_SIZE.large:
    print(_RUN_SIZE.summary_line(), file=sys.stderr)
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


def current_grid_keys():
    """Wildcard constraint of {key} in the grid output: only the enabled models' current grid keys match, so a grid of
    an earlier config is never made again under its old name (the grid command also checks model and key belong)."""
    return "|".join(PLANS[model].grid_key for model in ENABLED_MODELS) or "no-model-enabled"


def spec_path(model, chunk):
    """The spec file of chunk number `chunk`; its name carries the chunk's content key (see specs.smk)."""
    return f"results/specs/{model}/{spec_file_name(chunk, PLANS[model].chunk_keys[chunk])}"


def grid_path(model):
    """The model's parameter grid parquet; its name carries the grid's content key (see specs.smk)."""
    return f"results/grid/{model}/{grid_file_name(PLANS[model].grid_key)}"


def chunk_path(model, chunk):
    """The parquet of chunk number `chunk` under the current config (the simulate rule's output)."""
    return f"results/chunks/{model}/{chunk_file_name(chunk, PLANS[model].chunk_keys[chunk])}"


def chunk_manifest(model, chunk):
    """The chunk manifest written with the chunk (size, sha256, content checksum; the merge checks the chunk by it)."""
    return chunk_path(model, chunk).removesuffix(".parquet") + CHUNK_MANIFEST_SUFFIX


def quarantine_dir(model):
    """Where the merge moves the model's chunks that fail the integrity checks."""
    return f"{QUARANTINE_DIR}/{model}"


def densities_path(model):
    return f"results/{model}/densities.parquet"


def densities_manifest_path(model):
    """The merge manifest beside the densities; its name carries the plan key (merge.smk)."""
    return f"results/{model}/{densities_manifest_name(PLANS[model].plan_key)}"


def model_densities_manifest(wildcards):
    """Input function: the current merge manifest of one model."""
    return densities_manifest_path(wildcards.model)


def model_targets(model):
    """Input of the per-model target (Snakefile), named after `model`. Its densities, merge manifest and report
    figures, or for a disabled model an input function that stops with one line naming the config key."""
    if model not in ENABLED_MODELS:

        def disabled(wildcards):
            raise WorkflowError(f"model {model} is not enabled: set models.{model}.enabled: true in the config")

        return disabled
    return [
        densities_path(model),
        densities_manifest_path(model),
        f"results/report/{model}/validation.csv",
        f"results/report/{model}/runtime.png",
    ]


#: Hugging Face dataset folder (dataset.smk).
DATASET_DIR = "results/hf"


def dataset_manifest_path(model):
    """Per-model manifest written by dataset.smk's shards rule."""
    return f"results/dataset/manifests/{model}.json"


def _param_id_runs(model):
    """The model's configured param_ids as [first, last] runs (0..n_samples-1, or the ids of the parameter file)."""
    model_cfg = config["models"][model]
    if isinstance(model_cfg.get("sampler"), dict):
        from density_engine.workflow.samplers import read_parameter_file

        return id_runs(int(i) for i in read_parameter_file(model, model_cfg, ".")["param_id"])
    return [[0, int(model_cfg["n_samples"]) - 1]]


#: Every shard file of the dataset folder, per model, known from the config (explicit outputs: a deleted shard is
#: re-built, and no directory output puts Snakemake's .snakemake_timestamp into data/).
DATASET_SHARDS = {
    model: [
        f"{DATASET_DIR}/{name}"
        for name in planned_shard_names(model, _param_id_runs(model), len(config["models"][model]["horizons"]))
    ]
    for model in ENABLED_MODELS
}


def publish_inputs(wildcards):
    """Input function of publish: HF_HUB_OFFLINE, HF_TOKEN and the Hub are checked when the DAG is built, so a
    publish that cannot work stops with one line before any job starts (a dry run only lists the job: no check)."""
    from density_engine.dataset.publish import PublishError, check_publish_access

    if not workflow.dryrun:
        try:
            check_publish_access(os.environ.get("HF_ENDPOINT") or None)
        except PublishError as exc:
            raise WorkflowError(f"publish: {exc}") from None
    return {
        "readme": f"{DATASET_DIR}/README.md",
        "provenance": f"{DATASET_DIR}/provenance.json",
        "manifests": [dataset_manifest_path(model) for model in ENABLED_MODELS],
        "shards": [path for model in ENABLED_MODELS for path in DATASET_SHARDS[model]],
    }


def _dataset_hf(key, default=""):
    """A value of the `hf:` config section (dataset.smk)."""
    value = (config.get("hf") or {}).get(key)
    return default if value is None else value


def simulate_gpus():
    """The simulate rule's gpu resource: 1 when chunks run on CUDA (device cuda, or auto on a machine with a GPU), else
    0, so that a cap on `gpu` (profiles/local: one chunk per GPU) holds back GPU jobs only, never CPU chunks."""
    if config["device"] == "auto":  # the NVIDIA driver's GPU list (no torch import in every snakemake call)
        return 1 if nvidia_gpu_count() else 0
    return 1 if config["device"] == "cuda" else 0


def attempt_scaled(base):
    """Resource callable: the configured base value times the attempt number."""
    return lambda wildcards, attempt: int(base) * attempt
