# Per-model merge of the validated chunks into results/<model>/densities.parquet (runs on the controller).


rule merge:
    input:
        model_chunk_files,
    output:
        "results/{model}/densities.parquet",
    params:
        chunks_dir="results/chunks/{model}",
        num_chunks=lambda wildcards: PLANS[wildcards.model].num_chunks,
    log:
        "results/logs/merge/{model}.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "density-engine merge --model {wildcards.model} --chunks-dir {params.chunks_dir}"
        " --num-chunks {params.num_chunks} --out {output} > {log} 2>&1"


FINAL_TARGETS.extend(densities_path(model) for model in ENABLED_MODELS)
