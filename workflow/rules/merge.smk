# Per-model merge of the validated chunks into results/<model>/densities.parquet (runs on the controller).
#
# - The inputs are the chunks of the current plan (chunk_NNNNN.<key>.parquet, common.smk), their chunk manifests and
#   their specs: chunk files of older configs that are still in results/chunks/<model>/ are never merged. The merge
#   command rebuilds the same plan from the model config and verifies every chunk before writing anything (readable;
#   size, sha256 and content checksum against its chunk manifest; contract; value rules; quantiles consistent with the
#   moments; rows, settings and parameter values = its spec; density_engine/workflow/integrity.py). A chunk that fails
#   is moved to results/quarantine/<model>/ and the error names it and the check (--show-failed-logs prints the log,
#   as profiles/local does): the next run re-simulates exactly that chunk. The specs are ancient() (a rewritten spec of
#   the same content re-runs nothing); as inputs they are re-written if missing, e.g. after a config change was
#   reverted (the spec writer removed the old keys' specs, so those chunks are then simulated again).
# - The densities are update(): Snakemake does not delete them before the job (and restores them if it fails), and the
#   merge replaces them only after every check passed, so a failed merge never costs the last good densities. The
#   manifest is a plain output: Snakemake deletes it before the job, so after a failed merge it is missing and the next
#   run merges again (re-simulating the quarantined chunks first), even though the densities file is still there.
# - Beside the densities it writes the merge manifest results/<model>/densities.<plan key>.json (the plan key hashes
#   every chunk key), which `all` requests. Any change of what the model's densities must hold is therefore a missing
#   target file, so the merge and everything after it re-run also where Snakemake's metadata cannot tell
#   (--rerun-triggers mtime, deleted .snakemake/): a missing *input* of an existing output is no rerun reason there.
#   One rule per enabled model (merge_<model>), the only rule names besides the spec batches that depend on the config:
#   the manifest name has the plan key where the densities path has none, and Snakemake requires every output of a
#   rule to have the same wildcards. A keyed *input* (a plan file) would not do instead: a job whose outputs exist is
#   not re-run for a missing input under --rerun-triggers mtime (tested), so the keyed file has to be a target.


for _model in ENABLED_MODELS:

    rule:
        """Check every chunk of one model against its spec and merge them into results/<model>/densities.parquet."""
        name:
            f"merge_{_model}"
        input:
            chunks=[chunk_path(_model, chunk) for chunk in range(PLANS[_model].num_chunks)],
            chunk_manifests=[chunk_manifest(_model, chunk) for chunk in range(PLANS[_model].num_chunks)],
            specs=[ancient(spec_path(_model, chunk)) for chunk in range(PLANS[_model].num_chunks)],
        output:
            densities=update(densities_path(_model)),
            manifest=densities_manifest_path(_model),
        log:
            f"results/logs/merge/{_model}.log",
        # A failed merge is not transient, and it moved the bad chunks away: a retry (profiles/local has retries: 1)
        # could only wait for them in vain. The next run re-simulates them.
        retries: 0
        localrule: True
        conda:
            "../envs/workflow.yaml"
        params:
            model=_model,
            model_config=MODEL_CONFIG_JSON[_model],
            chunks_dir=lambda wildcards, input: os.path.dirname(input.chunks[0]),
            specs_dir=lambda wildcards, input: os.path.dirname(input.specs[0]),
            quarantine_dir=quarantine_dir(_model),
        shell:
            "density-engine merge --model {params.model} --model-config {params.model_config:q}"
            " --chunks-dir {params.chunks_dir} --specs-dir {params.specs_dir}"
            " --out {output.densities} --manifest {output.manifest} --quarantine-dir {params.quarantine_dir}"
            " > {log} 2>&1"


FINAL_TARGETS.extend(densities_path(model) for model in ENABLED_MODELS)
FINAL_TARGETS.extend(densities_manifest_path(model) for model in ENABLED_MODELS)
