# Report figures per model: parameter-space coverage, quantile fan charts, validation against the model references,
# the error budget per horizon (Monte Carlo and discretisation error columns), per-chunk runtimes (benchmark files of the merged chunks, chunk_NNNNN.<key>.tsv, named by the merge manifest), and
# one cost table of the run (from the vast executor's cost ledger, or a "local run" row). Tables are CSV files plus an
# HTML rendering of each, which `snakemake --report report.html` shows inline (a CSV would only be a download link).


rule report_figures:
    """Draw one model's report figures: parameter coverage, quantile fans, validation, error budget, per-chunk runtimes."""
    input:
        densities="results/{model}/densities.parquet",
        manifest=model_densities_manifest,
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
        validation_csv="results/report/{model}/validation.csv",
        validation_table=report(
            "results/report/{model}/validation.html",
            caption="../report/validation_table.rst",
            category="{model}",
            subcategory="validation",
        ),
        errors=report(
            "results/report/{model}/errors.png",
            caption="../report/errors.rst",
            category="{model}",
            subcategory="error budget",
        ),
        runtime=report(
            "results/report/{model}/runtime.png",
            caption="../report/runtime.rst",
            category="{model}",
            subcategory="runtime",
        ),
    log:
        "results/logs/report_figures/{model}.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    params:
        benchmarks_dir="results/benchmarks/simulate/{model}",
        out_dir="results/report/{model}",
    shell:
        "density-engine report-figures --model {wildcards.model} --densities {input.densities}"
        " --manifest {input.manifest} --benchmarks-dir {params.benchmarks_dir} --out-dir {params.out_dir}"
        " > {log} 2>&1"


FINAL_TARGETS.extend(f"results/report/{model}/validation.csv" for model in ENABLED_MODELS)
FINAL_TARGETS.extend(f"results/report/{model}/runtime.png" for model in ENABLED_MODELS)


# The cost table runs after every model's merge and reads the vast executor's ledgers (one file per run, an
# append-only history). The executor finalizes a run's ledger (hosts destroyed) before it reports the workflow's last
# remote job, so when this local rule runs, the current run's ledger is final and nothing rewrites it later. The ledger
# folder is a parameter, not an input: a run creates its ledger file only after Snakemake built the DAG, so as an input
# it would make every finished Vast run out of date again. The table is rebuilt whenever the densities change (every
# run that computed anything); `snakemake --forcerun report_costs` refreshes it after a cleanup of a killed run.
rule report_costs:
    """Tabulate the costs of every Vast run from the executor's ledgers (a "local run" row without any)."""
    input:
        densities=[densities_path(model) for model in ENABLED_MODELS],
    output:
        csv="results/report/costs.csv",
        html=report("results/report/costs.html", caption="../report/costs.rst", category="costs", subcategory="vast"),
    log:
        "results/logs/report_costs/costs.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    params:
        ledger_dir=VAST_LEDGER_DIR,
    shell:
        "density-engine report-costs --ledger-dir {params.ledger_dir} --out {output.csv} --html {output.html}"
        " > {log} 2>&1"


FINAL_TARGETS.append(rules.report_costs.output.csv)
