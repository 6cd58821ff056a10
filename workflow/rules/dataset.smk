# Hugging Face dataset: per-model shards from results/<model>/densities.parquet, then the card + provenance
# (part of `all`), and publishing to the Hub (NOT part of `all`: `snakemake -c1 publish`). Every rule calls the
# `density-engine dataset` CLI; see docs/dataset.md.

# DATASET_DIR, DATASET_SHARDS, dataset_manifest_path(), publish_inputs() and _dataset_hf() live in common.smk
# (snakemake --lint: no functions here).
#
# - Every shard file results/hf/data/<model>/params-<first>-<last>.parquet is an explicit output (its name follows from
#   the configured param_ids and horizons): a deleted shard is re-built, and no directory output puts Snakemake's
#   .snakemake_timestamp into data/.
# - The shards step verifies the densities against the merge manifest's sha256 and the data against the model's config
#   before writing anything; the shards, the card and provenance.json are update(), so Snakemake does not delete the
#   last good dataset before a job, and a failing job leaves it as it was. The per-model manifest is a plain output:
#   missing after a failed shards job, so the next run builds the shards again.
# - The card rule gets only the `models` entries of the enabled models and `hf`: changing `device`, `resources` or a
#   disabled model re-runs nothing.


for _model in ENABLED_MODELS:

    rule:
        """Cut one model's densities into Hugging Face dataset shards (data/<model>/) and write their manifest."""
        name:
            f"dataset_shards_{_model}"
        input:
            densities=densities_path(_model),
            merge_manifest=densities_manifest_path(_model),
        output:
            manifest=dataset_manifest_path(_model),
            shards=[update(path) for path in DATASET_SHARDS[_model]],
        log:
            f"results/logs/dataset_shards/{_model}.log",
        localrule: True
        conda:
            "../envs/dataset.yaml"
        params:
            model=_model,
            model_config=MODEL_CONFIG_JSON[_model],
            out_dir=lambda wildcards, output: os.path.dirname(os.path.dirname(os.path.dirname(output.shards[0]))),
        shell:
            "density-engine dataset shards --model {params.model} --out {params.out_dir} --manifest {output.manifest}"
            " --densities-manifest {input.merge_manifest} --model-config {params.model_config:q} {input.densities}"
            " > {log} 2>&1"


rule dataset_card:
    """Write the dataset card (README.md) and provenance.json after checking every shard against the config."""
    input:
        manifests=[dataset_manifest_path(model) for model in ENABLED_MODELS],
        shards=[path for model in ENABLED_MODELS for path in DATASET_SHARDS[model]],
    output:
        readme=update(f"{DATASET_DIR}/README.md"),
        provenance=update(f"{DATASET_DIR}/provenance.json"),
    log:
        "results/logs/dataset_card/card.log",
    localrule: True
    conda:
        "../envs/dataset.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.readme),
        config_json=json.dumps(
            {"models": {model: config["models"][model] for model in ENABLED_MODELS}, "hf": config.get("hf") or {}},
            sort_keys=True,
            default=str,
        ),
    shell:
        "density-engine dataset card --out {params.out_dir} --config-json {params.config_json:q}"
        " {input.manifests} > {log} 2>&1"


# Before any job starts, publish_inputs (common.smk) checks HF_HUB_OFFLINE, HF_TOKEN and that the Hub accepts it.
rule publish:
    """Upload results/hf/ to the Hugging Face Hub and tag the release (explicit target, not part of `all`)."""
    input:
        unpack(publish_inputs),
    output:
        "results/publish/hf.json",
    log:
        "results/logs/publish/hf.log",
    localrule: True
    conda:
        "../envs/dataset.yaml"
    params:
        folder=lambda wildcards, input: os.path.dirname(input.readme),
        repo_id=_dataset_hf("repo_id"),
        tag=_dataset_hf("tag"),
        revision=_dataset_hf("revision", "main"),
        visibility="--private" if _dataset_hf("private", False) else "--public",
    shell:
        "density-engine dataset publish --folder {params.folder} --repo-id {params.repo_id:q} --tag {params.tag:q}"
        " --revision {params.revision:q} {params.visibility} --result {output} > {log} 2>&1"


FINAL_TARGETS.append(rules.dataset_card.output.readme)
# The shard files are targets too: Snakemake re-runs a job for a missing output only when a target needs it.
FINAL_TARGETS.extend(path for model in ENABLED_MODELS for path in DATASET_SHARDS[model])
