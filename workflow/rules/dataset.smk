# Hugging Face dataset: per-model shards from results/<model>/densities.parquet, then the card + provenance
# (part of `all`), and publishing to the Hub (NOT part of `all`: `snakemake -c1 publish`). Every rule calls the
# `density-engine dataset` CLI; see docs/dataset.md.

# DATASET_DIR, dataset_manifest_path() and _dataset_hf() live in common.smk (snakemake --lint: no functions here).
#
# The shards folder data/<model>/ is an output of dataset_shards next to the manifest (and a final target): when it is
# missing (deleted, or pruned by the card while the model was disabled) the shards are re-built instead of trusting an
# old manifest.
# The card rule gets only the `models` entries of the enabled models and `hf`: changing `device`, `resources` or a
# disabled model re-runs nothing.


rule dataset_shards:
    """Cut one model's densities into Hugging Face dataset shards (data/<model>/) and write their manifest."""
    input:
        densities_path("{model}"),
    output:
        manifest=dataset_manifest_path("{model}"),
        data=directory(f"{DATASET_DIR}/data/{{model}}"),
    log:
        "results/logs/dataset_shards/{model}.log",
    localrule: True
    conda:
        "../envs/dataset.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(os.path.dirname(output.data)),
    shell:
        "density-engine dataset shards --model {wildcards.model} --out {params.out_dir} --manifest {output.manifest}"
        " {input} > {log} 2>&1"


rule dataset_card:
    """Write the dataset card (README.md) and provenance.json after checking every shard against the config."""
    input:
        manifests=[dataset_manifest_path(model) for model in ENABLED_MODELS],
        data=[f"{DATASET_DIR}/data/{model}" for model in ENABLED_MODELS],
    output:
        readme=f"{DATASET_DIR}/README.md",
        provenance=f"{DATASET_DIR}/provenance.json",
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


rule publish:
    """Upload results/hf/ to the Hugging Face Hub and tag the release (explicit target, not part of `all`)."""
    input:
        readme=rules.dataset_card.output.readme,
        provenance=rules.dataset_card.output.provenance,
        manifests=[dataset_manifest_path(model) for model in ENABLED_MODELS],
        data=[f"{DATASET_DIR}/data/{model}" for model in ENABLED_MODELS],
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
# The shard folders are targets too: Snakemake re-runs a job for a missing output only when a target needs it.
FINAL_TARGETS.extend(f"{DATASET_DIR}/data/{model}" for model in ENABLED_MODELS)
