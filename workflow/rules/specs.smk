# Parameter grid -> one small JSON spec per chunk (the only input of a chunk job).
#
# One job per model writes all of its chunk specs (sampling a million parameter sets in one process; a job per chunk
# would pay the interpreter start-up ten thousand times). Each spec file is named after the chunk's content key,
# results/specs/<model>/chunk_00003.<key>.json, a hash of everything that decides the chunk's content, computed
# without sampling when the DAG is built. A config change that alters a chunk's content gives it a new spec file name,
# so exactly that chunk re-runs; simulate marks its spec ancient(), so rewriting the unchanged specs re-runs nothing.


for _model in ENABLED_MODELS:

    rule:
        name:
            f"specs_{_model}"
        output:
            [spec_path(_model, chunk) for chunk in range(PLANS[_model].num_chunks)],
        params:
            model=_model,
            model_config=json.dumps(config["models"][_model], sort_keys=True),
            out_dir=f"results/specs/{_model}",
        log:
            f"results/logs/specs/{_model}.log",
        localrule: True
        shell:
            "density-engine specs --model {params.model} --model-config {params.model_config:q}"
            " --out-dir {params.out_dir} > {log} 2>&1"
