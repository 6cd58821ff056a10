# One Monte Carlo chunk: spec JSON -> chunk parquet, by the `density-engine simulate` CLI.
#
# - Input and output names carry the chunk's content key (specs.smk; the {key} wildcard passes straight through):
#   results/specs/<model>/chunk_00003.<key>.json -> results/chunks/<model>/chunk_00003.<key>.parquet (log and
#   benchmark likewise). A config change that alters this chunk's content changes both names, so the chunk re-runs
#   whatever Snakemake's metadata says (also with --rerun-triggers mtime or after deleting .snakemake/), and a chunk
#   of an older config is never taken for the current one. The spec is ancient(): rewriting an unchanged spec (its
#   batch was rewritten for another chunk) re-runs nothing.
# - params: the content key and the model settings (one line, also the first line of the log), so Snakemake's params
#   trigger and `--list-changes params` see the settings too.
# - resources scale with the attempt number (retries get more memory and time). gpu is 1 when the chunk runs on CUDA
#   (device cuda, or auto on a machine with a GPU) and 0 on the CPU (common.smk): profiles/local caps it at one chunk
#   per GPU, profiles/slurm requests a GPU per chunk; the vast executor rents at least one GPU per host whatever the
#   value, and group "simulate" lets the vast profile batch chunks per host. The device comes from config as a string
#   resource (so it is not a rerun trigger); torch uses `threads` CPU threads (1: `-c all` runs one chunk per core;
#   --set-threads simulate=N).
# - The CLI first checks that it can write the outputs (folder writable, room for the chunk): a bad folder fails in
#   one line before anything is simulated. It writes the parquet atomically (temp file + rename), so an interrupted
#   job never leaves a complete-looking output, then the chunk manifest (size, sha256 and content checksum of the
#   chunk, which the merge verifies); Snakemake's incomplete markers make `--rerun-incomplete` redo exactly the
#   interrupted chunks.


rule simulate:
    """Simulate one chunk (spec JSON -> quantiles and moments per parameter set and horizon) with PyTorch."""
    input:
        spec=ancient("results/specs/{model}/chunk_{chunk}.{key}.json"),
    output:
        chunk="results/chunks/{model}/chunk_{chunk}.{key}.parquet",
        manifest="results/chunks/{model}/chunk_{chunk}.{key}.manifest.json",
    log:
        "results/logs/simulate/{model}/chunk_{chunk}.{key}.log",
    benchmark:
        "results/benchmarks/simulate/{model}/chunk_{chunk}.{key}.tsv"
    group:
        "simulate"
    conda:
        "../envs/simulate.yaml"
    threads: 1
    resources:
        gpu=simulate_gpus(),
        mem_mb=attempt_scaled(config["resources"]["mem_mb"]),
        runtime=attempt_scaled(config["resources"]["runtime"]),
        device=config["device"],
    params:
        key="{key}",
        settings=lambda wildcards: CHUNK_SETTINGS[wildcards.model],
    shell:
        "echo {wildcards.model} chunk {wildcards.chunk} key {params.key}: {params.settings:q} > {log};"
        " density-engine simulate --spec {input.spec} --out {output.chunk} --manifest {output.manifest}"
        " --device {resources.device}"
        " --threads {threads} >> {log} 2>&1"
