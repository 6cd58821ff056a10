# Report figures per model: parameter-space coverage, quantile fan charts, validation against the model references,
# per-chunk runtimes (benchmark files of the merged chunks, chunk_NNNNN.<key>.tsv, named by the merge manifest), and
# one cost table of the run (from the vast executor's cost ledger, or a "local run" row). Tables are CSV files plus an
# HTML rendering of each, which `snakemake --report report.html` shows inline (a CSV would only be a download link).


rule report_figures:
    """Draw one model's report figures: parameter coverage, quantile fans, validation, per-chunk runtimes."""
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


# The cost table runs after every model's merge (so every rented host of the run is in the ledger by then) and reads
# the vast executor's cost ledger, which the executor keeps up to date during the run and writes a final time when the
# run ends. The ledger is an input only when it exists: a local run writes its one "local run" row once; a new or
# updated ledger re-runs this step (and nothing else) on the next invocation, which picks up the final ledger.
rule report_costs:
    """Tabulate the run's costs from the vast executor's cost ledger (a "local run" row without one)."""
    input:
        densities=[densities_path(model) for model in ENABLED_MODELS],
        ledger=cost_ledger_input,
    output:
        csv="results/report/costs.csv",
        html=report("results/report/costs.html", caption="../report/costs.rst", category="costs", subcategory="vast"),
    log:
        "results/logs/report_costs/costs.log",
    localrule: True
    conda:
        "../envs/report.yaml"
    params:
        ledger=VAST_COST_LEDGER,
    shell:
        "density-engine report-costs --ledger {params.ledger} --out {output.csv} --html {output.html} > {log} 2>&1"


FINAL_TARGETS.append(rules.report_costs.output.csv)
