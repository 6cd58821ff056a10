# One Monte Carlo chunk: spec JSON -> chunk parquet, by the `density-engine simulate` CLI.
#
# - The spec file name carries the chunk's content key (specs.smk): a config change that alters this chunk's content
#   gives it a new input file and re-runs it; the spec is ancient(), so rewriting unchanged specs re-runs nothing.
# - resources scale with the attempt number (retries get more memory and time); gpu=1 and group "simulate" let the
#   vast profile batch chunks onto rented GPU hosts. The device comes from config as a string resource (so it is not
#   a rerun trigger); torch uses `threads` CPU threads (1: `-c all` runs one chunk per core; --set-threads simulate=N).
# - The CLI writes the parquet atomically (temp file + rename), so an interrupted job never leaves a complete-looking
#   output; Snakemake's incomplete markers make `--rerun-incomplete` redo exactly the interrupted chunks.


rule simulate:
    input:
        spec=ancient(chunk_spec_file),
    output:
        chunk="results/chunks/{model}/chunk_{chunk}.parquet",
    log:
        "results/logs/simulate/{model}/chunk_{chunk}.log",
    benchmark:
        "results/benchmarks/simulate/{model}/chunk_{chunk}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=attempt_scaled(config["resources"]["mem_mb"]),
        runtime=attempt_scaled(config["resources"]["runtime"]),
        device=config["device"],
    group:
        "simulate"
    conda:
        "../../environment.yml"
    shell:
        "density-engine simulate --spec {input.spec} --out {output.chunk} --device {resources.device}"
        " --threads {threads} > {log} 2>&1"
