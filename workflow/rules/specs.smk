# Parameter grid -> one small JSON spec per chunk (the only input of a chunk job).
#
# grid: one job per model samples the model's whole parameter grid into results/grid/<model>/parameters.<key>.parquet
#   (draws are checked in vectorised batches; a million GARCH sets take a few seconds in one process).
# specs_<model>_<batch>: one job per 100 chunks writes their specs, results/specs/<model>/chunk_00003.<key>.json.
#   (One job with ten thousand outputs would make Snakemake's DAG handling quadratic; batches keep it linear. One job
#   per spec would double the DAG and read the grid once per chunk.)
#
# Both names carry content keys: hashes of everything that decides the grid / the chunk, computed from the config
# without sampling when the DAG is built. A config change that alters a chunk's content gives it a new spec file name
# (and chunk output name, simulate.smk), so exactly that chunk re-runs; grid and spec inputs are ancient(), so
# rewriting unchanged specs re-runs nothing.


rule grid:
    """Sample one model's parameter grid (param_id + parameters) into a parquet file named after its content key."""
    output:
        "results/grid/{model}/parameters.{key}.parquet",
    log:
        "results/logs/grid/{model}/parameters.{key}.log",
    wildcard_constraints:
        key=current_grid_keys(),
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        model_config=lambda wildcards: MODEL_CONFIG_JSON[wildcards.model],
    shell:
        "density-engine grid --model {wildcards.model} --model-config {params.model_config:q}"
        " --out {output} > {log} 2>&1"


# One rule per model and batch of 100 chunks: a rule has a fixed list of output patterns sharing one set of wildcards,
# so a job that writes 100 spec files, each named after its own chunk key, cannot be one wildcard rule.
for _model in ENABLED_MODELS:
    for _batch, _chunks in enumerate(PLANS[_model].batches()):

        rule:
            """Write the specs of one model's batch of up to 100 chunks (chunk_NNNNN.<key>.json) from its grid."""
            name:
                f"specs_{_model}_{_batch:03d}"
            input:
                grid=ancient(grid_path(_model)),
            output:
                [spec_path(_model, chunk) for chunk in _chunks],
            log:
                f"results/logs/specs/{_model}/batch_{_batch:03d}.log",
            localrule: True
            conda:
                "../envs/workflow.yaml"
            params:
                model=_model,
                model_config=MODEL_CONFIG_JSON[_model],
                chunks=f"{_chunks.start}:{_chunks.stop}",
                out_dir=lambda wildcards, output: os.path.dirname(output[0]),
            shell:
                "density-engine specs --model {params.model} --model-config {params.model_config:q}"
                " --grid {input.grid} --chunks {params.chunks} --out-dir {params.out_dir} > {log} 2>&1"
