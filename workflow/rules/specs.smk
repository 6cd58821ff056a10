# Parameter grid -> one small JSON spec per chunk (the only input of a chunk job).
#
# One job per model writes all of its chunk specs (sampling a million parameter sets takes seconds in one process,
# where a job per chunk would pay the interpreter start-up ten thousand times). The job re-runs when the model's plan
# changes; simulate jobs mark their spec ancient() and re-run only when their own content key changes.


def _plan_digest(model):
    """Hash of the model's config and of every chunk's content key: changes whenever any spec would change."""
    payload = json.dumps({"model_config": config["models"][model], "keys": PLANS[model].chunk_keys}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


for _model in ENABLED_MODELS:

    rule:
        name:
            f"specs_{_model}"
        output:
            [spec_path(_model, name) for name in PLANS[_model].chunk_names],
        params:
            model=_model,
            model_config=json.dumps(config["models"][_model], sort_keys=True),
            plan=_plan_digest(_model),
            out_dir=f"results/specs/{_model}",
        log:
            f"results/logs/specs/{_model}.log",
        localrule: True
        shell:
            "density-engine specs --model {params.model} --model-config {params.model_config:q}"
            " --out-dir {params.out_dir} > {log} 2>&1"
