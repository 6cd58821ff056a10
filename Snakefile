# density-engine workflow: config -> parameter grid -> chunk specs -> Monte Carlo chunks -> per-model densities ->
# report figures -> Hugging Face dataset folder (publishing is a separate, explicit target: `snakemake publish`).
#
#   snakemake -c all                       the embedded CPU demo (config/config.yaml), end to end
#   snakemake -n                           dry run: lists every chunk job
#   snakemake -c all rough_heston          one model (densities + report figures)
#   snakemake --report report.html         HTML report with the figures and captions
#
# See README.md and config/README.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/specs.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/dataset.smk"


rule all:
    default_target: True
    input:
        FINAL_TARGETS,


for _model in ENABLED_MODELS:

    rule:
        name:
            _model
        input:
            densities_path(_model),
            densities_manifest_path(_model),
            f"results/report/{_model}/validation.csv",
            f"results/report/{_model}/runtime.png",
        localrule: True
