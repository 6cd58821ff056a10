# Report figures per model: parameter-space coverage, quantile fan charts, validation against the model references,
# per-chunk runtimes (from the simulate benchmark files). `snakemake --report report.html` collects them with captions.


rule report_figures:
    input:
        densities="results/{model}/densities.parquet",
    output:
        coverage=report(
            "results/report/{model}/coverage.png",
            caption="../report/coverage.rst",
            category="{model}",
            subcategory="parameter coverage",
        ),
        fan=report(
            "results/report/{model}/fan.png",
            caption="../report/fan.rst",
            category="{model}",
            subcategory="quantile fan charts",
        ),
        validation=report(
            "results/report/{model}/validation.png",
            caption="../report/validation.rst",
            category="{model}",
            subcategory="validation",
        ),
        validation_table=report(
            "results/report/{model}/validation.csv",
            caption="../report/validation_table.rst",
            category="{model}",
            subcategory="validation",
        ),
        runtime=report(
            "results/report/{model}/runtime.png",
            caption="../report/runtime.rst",
            category="{model}",
            subcategory="runtime",
        ),
    params:
        benchmarks_dir="results/benchmarks/simulate/{model}",
        num_chunks=lambda wildcards: PLANS[wildcards.model].num_chunks,
        out_dir="results/report/{model}",
    log:
        "results/logs/report_figures/{model}.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "density-engine report-figures --model {wildcards.model} --densities {input.densities}"
        " --benchmarks-dir {params.benchmarks_dir} --num-chunks {params.num_chunks} --out-dir {params.out_dir}"
        " > {log} 2>&1"


FINAL_TARGETS.extend(f"results/report/{model}/validation.csv" for model in ENABLED_MODELS)
FINAL_TARGETS.extend(f"results/report/{model}/runtime.png" for model in ENABLED_MODELS)
