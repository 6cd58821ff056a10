"""The dataset card (``README.md`` with YAML front matter) and ``provenance.json`` of the dataset folder.

Both are deterministic functions of the data (the model manifests, which carry the chunks' provenance: the code
version, git commit, torch version, device and RNG that *simulated* the rows) and of the data-relevant config (the
``models`` entries of the models in the dataset, plus ``hf.repo_id``/``hf.tag`` for the loading snippets). Nothing
about the process that builds the card enters them (its git checkout, its package versions, the time, ``device`` or
``resources`` of the config), so re-building unchanged data gives byte-identical files and publishing them again
makes no commit.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from density_engine.dataset.checks import check_against_config
from density_engine.dataset.shards import ModelManifest, verify_shards, write_if_changed
from density_engine.dataset.units import model_units

LICENSE = "cc-by-4.0"
TAGS = ["finance", "stochastic-volatility", "simulation", "synthetic", "quantiles", "monte-carlo", "rough-volatility"]
DEFAULT_CONFIG = "gjrgarch_normalized"
PROVENANCE_VERSION = 3
#: How the card names each model in its title.
MODEL_TITLES = {"gjrgarch_normalized": "GJR-GARCH", "rough_heston": "rough Heston", "rough_bergomi": "rough Bergomi"}
#: The card line that records the sha256 of provenance.json (publishing checks that the two files belong together).
PROVENANCE_DIGEST_LINE = "- `provenance.json` sha256: `{digest}`."
PROVENANCE_DIGEST_PATTERN = re.compile(r"^- `provenance\.json` sha256: `([0-9a-f]{64})`\.$", re.MULTILINE)
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` value for a row count."""
    for limit, name in SIZE_CATEGORIES:
        if rows < limit:
            return name
    return "1B<n<10B"


def pretty_name(models: Sequence[str]) -> str:
    """The card title for the models in the dataset (in the given order)."""
    titles = ", ".join(MODEL_TITLES.get(m, m) for m in models)
    return f"Simulated return densities of stochastic-volatility models ({titles})"


def models_config(config: Mapping[str, Any] | None, models: Sequence[str]) -> dict[str, Any] | None:
    """The config entries of ``models`` with the workflow defaults filled in and ``enabled`` dropped (so a config read
    from YAML and the one Snakemake validated give the same record); ``None`` without a config."""
    if config is None:
        return None
    from density_engine.parameter_grid import apply_defaults

    configured = config.get("models") or {}
    filled = apply_defaults({"models": {m: dict(configured[m]) for m in models if m in configured}})["models"]
    return {m: {k: v for k, v in filled[m].items() if k != "enabled"} if m in filled else None for m in models}


def config_digest(config: Mapping[str, Any] | None, models: Sequence[str]) -> str | None:
    """sha256 of the canonical JSON of :func:`models_config`: only what shapes the data of these models (not ``hf``,
    ``device``, ``resources`` or other models)."""
    relevant = models_config(config, models)
    if relevant is None:
        return None
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def _model_class(model: str) -> Any:
    """The registered model class, or None (a card can describe chunks of a model this installation lacks)."""
    try:
        from density_engine.models import get_model_class

        return get_model_class(model)
    except (KeyError, ImportError):
        return None


def _model_description(model: str) -> tuple[dict[str, Any] | None, str]:
    """``Model.describe()`` and the model module's docstring (equations and scheme), if the model is registered."""
    model_class = _model_class(model)
    if model_class is None:
        return None, ""
    module_doc = sys.modules[model_class.__module__].__doc__ or ""
    return model_class.describe(), module_doc.strip()


def _moments_note(model: str) -> str:
    """The model's note on moment columns that are NaN where the moment is infinite (empty if all moments exist)."""
    model_class = _model_class(model)
    return "" if model_class is None else model_class.moments_note


def _parameters(manifest: ModelManifest, model_config: Mapping[str, Any], declared: Mapping[str, Any]) -> list[Any]:
    from_file = isinstance(model_config.get("sampler"), Mapping)
    configured = model_config.get("parameters") or {}
    parameters = []
    for name in manifest.parameter_names:
        entry: dict[str, Any] = {"name": name, "observed_range": manifest.parameter_ranges[name]}
        if name in declared:
            entry.update(
                bounds=declared[name]["bounds"],
                description=declared[name]["description"],
                default_range=declared[name]["default_range"],
            )
        if from_file:
            pass  # the parameter file defines the values; configured ranges are not used
        elif name in configured:
            entry["config"] = configured[name]
        elif model_config and name in declared:
            # omitted from the config: the workflow samples the model's default range
            entry["config"] = declared[name]["default_range"]
            entry["config_is_model_default"] = True
        parameters.append(entry)
    return parameters


def build_provenance(
    manifests: Sequence[ModelManifest], config: Mapping[str, Any] | None, base_dir: str | Path = "."
) -> dict[str, Any]:
    """The machine-readable provenance record (also rendered, in prose, in the card).

    Checks each model's data against its config first (:func:`~density_engine.dataset.checks.check_against_config`:
    the configured param_ids and horizons, parameter values inside the configured ranges); a mismatch raises
    ``DatasetInputError`` naming the model and the config key.
    """
    models: dict[str, Any] = {}
    for manifest in manifests:
        model_config = dict((config or {}).get("models", {}).get(manifest.model) or {})
        check_against_config(manifest, model_config, base_dir)
        description, _ = _model_description(manifest.model)
        declared = {p["name"]: p for p in (description or {}).get("parameters", [])}
        if description is not None and list(declared) != manifest.parameter_names:
            raise ValueError(
                f"model {manifest.model!r}: the data has parameter columns {manifest.parameter_names}, but the model "
                f"declares {list(declared)} (data from {manifest.sources[:3]})"
            )
        models[manifest.model] = {
            "description": (description or {}).get("description", ""),
            "rows": manifest.rows,
            "param_sets": manifest.param_sets,
            "param_id_range": manifest.param_id_range,
            "horizons": manifest.horizons,
            "num_paths": manifest.num_paths,
            "num_quantiles": manifest.num_quantiles,
            "seeds": manifest.seeds,
            "dt": manifest.dt,
            "sampler": model_config.get("sampler"),
            "n_samples": model_config.get("n_samples"),
            "parameters": _parameters(manifest, model_config, declared),
            "mc_error": manifest.mc_error,
            "error_budget": manifest.error_budget,
            "simulation": manifest.file_metadata,
            "shards": [
                {
                    "path": s.path,
                    "rows": s.rows,
                    "bytes": s.bytes,
                    "sha256": s.sha256,
                    "param_ids": [s.first_param_id, s.last_param_id],
                }
                for s in manifest.shards
            ],
            "params_per_shard": manifest.params_per_shard,
        }
    return {
        "provenance_version": PROVENANCE_VERSION,
        "models_config_sha256": config_digest(config, [m.model for m in manifests]),
        "quantile_levels": "p_j = (j + 0.5) / Q for j = 0..Q-1 (Q = num_quantiles); estimate = order statistic "
        "floor(p_j N) of the N simulated cumulative log-returns",
        "seed_policy": "each RNG sub-block k of parameter set param_id has its own generator seeded from a hash of "
        "(seed, param_id, k): results do not depend on chunking, block size or position of the parameter set",
        "total_rows": sum(m.rows for m in manifests),
        "models": models,
    }


def _feature_yaml(feature: Mapping[str, Any]) -> dict[str, Any]:
    """A feature entry with its keys in the order datasets expects: name, then the type key (dtype/list), then length.

    (datasets reads the first key after ``name`` as the type, so ``{length, list, name}`` — e.g. from a JSON manifest
    written with sorted keys — fails to load.)
    """
    order = ("name", "dtype", "list", "length")
    return {key: feature[key] for key in order if key in feature}


def card_metadata(manifests: Sequence[ModelManifest]) -> dict[str, Any]:
    """The YAML front matter: licence, tags, sizes, one ``configs`` entry and one ``dataset_info`` entry per model."""
    names = [m.model for m in manifests]
    default = DEFAULT_CONFIG if DEFAULT_CONFIG in names else names[0]
    configs = []
    infos = []
    for manifest in manifests:
        entry: dict[str, Any] = {
            "config_name": manifest.model,
            "data_files": [{"split": "train", "path": f"data/{manifest.model}/*.parquet"}],
        }
        if manifest.model == default:
            entry["default"] = True
        configs.append(entry)
        shard_bytes = sum(s.bytes for s in manifest.shards)
        infos.append(
            {
                "config_name": manifest.model,
                "features": [_feature_yaml(feature) for feature in manifest.features],
                "splits": [{"name": "train", "num_bytes": manifest.in_memory_bytes, "num_examples": manifest.rows}],
                "download_size": shard_bytes,
                "dataset_size": manifest.in_memory_bytes,
            }
        )
    return {
        "license": LICENSE,
        "pretty_name": pretty_name(names),
        "task_categories": ["time-series-forecasting", "tabular-regression"],
        "tags": TAGS,
        "size_categories": [size_category(sum(m.rows for m in manifests))],
        "source_datasets": ["original"],
        "configs": configs,
        "dataset_info": infos,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return "—" if value is None else str(value)


def _config_range(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    return f"fixed {_fmt(value)}" if value is not None else "—"


def _values_text(values: Sequence[Any] | None, what: str = "value") -> str:
    """One value as is; several listed with their count (they must not be hidden); none as "not recorded"."""
    if not values:
        return "not recorded"
    shown = ", ".join(f"`{v}`" for v in values)
    return shown if len(values) == 1 else f"{shown} ({len(values)} distinct {what}s across the chunks)"


def _commits_text(commits: Sequence[str] | None) -> str:
    if not commits:
        return "not recorded"
    dirty = [c for c in commits if str(c).endswith("-dirty")]
    note = " (`-dirty`: simulated with uncommitted changes)" if dirty else ""
    return _values_text(commits, "commit") + note


def code_lines(record: Mapping[str, Any]) -> list[str]:
    """The card lines naming the code and software that simulated a model's rows (from the chunk metadata)."""
    simulation = record.get("simulation") or {}
    return [
        f"- Code: density-engine {_values_text(simulation.get('density_engine.code_version'), 'version')}, "
        f"git commit {_commits_text(simulation.get('density_engine.git_commit'))}.",
        f"- Software: torch {_values_text(simulation.get('torch.version'), 'version')}; device "
        f"{_values_text(simulation.get('device'), 'device')}; RNG {_values_text(simulation.get('rng'), 'RNG')}.",
    ]


def _error_cell(entry: Mapping[str, Any]) -> str:
    value = entry.get("median_se_over_std")
    return _fmt(value) if value is not None else "—"


def _mc_error_table(mc_error: Mapping[str, Any]) -> list[str]:
    """Levels × horizons table of the median relative standard error (absolute values are in provenance.json)."""
    horizons = mc_error["horizons"]
    lines = [
        f"Monte Carlo standard error of the quantiles, relative to the row's standard deviation (median over the rows "
        f"of each horizon; sd(q̂_p) ≈ se_F(p) / f(q_p), se_F the row's own `mc_se_cdf_*` (sqrt(p(1-p)/N) for plain "
        f"order statistics), f from adjacent quantiles in normal-score coordinates). "
        f"— : fewer than {mc_error['min_tail_paths']} paths beyond the quantile (min(p, 1-p) N < "
        f"{mc_error['min_tail_paths']}), where the asymptotic formula does not hold. Absolute values "
        "(log-return units) per horizon are in `provenance.json`.",
        "",
        "| level p | " + " | ".join(f"h = {h['horizon']}" for h in horizons) + " |",
        "|---|" + "---|" * len(horizons),
    ]
    for i, first in enumerate(horizons[0]["levels"]):
        cells = [_error_cell(h["levels"][i]) for h in horizons]
        lines.append(f"| {first['level']:.6f} | " + " | ".join(cells) + " |")
    return lines


def time_grid_text(model: str, record: Mapping[str, Any]) -> str:
    """The card line of a model's time grids (the chunks' ``time_grid`` metadata, described by the policy itself)."""
    from density_engine.models.time_grid import TimeGridPolicy

    grids = [g for g in (record.get("simulation") or {}).get("time_grid", []) if isinstance(g, Mapping)]
    if not grids:
        return "- Time grid: none (an exact discrete-time model: no discretisation error)."
    texts = []
    model_class = _model_class(model)
    for grid in grids:
        policy = TimeGridPolicy.from_dict(grid) if model_class is None else model_class.spec_time_grid_policy(grid)
        coarse = " (`allow_coarse`: coarser than the accuracy bound, a demo grid)" if policy.allow_coarse else ""
        texts.append(f"{policy.describe()}{coarse}")
    return f"- Time grid (`time_grid`): {'; '.join(texts)}."


def error_budget_lines(name: str, record: Mapping[str, Any]) -> list[str]:
    """The error-budget section of a model: per horizon the fine steps and the max (and median) over rows of the
    ``mc_se_cdf_max`` and ``disc_err_cdf_max`` columns, how each was estimated, and the rows above the 1e-3 goal."""
    budget = record["error_budget"]
    methods = [m for m in (record.get("simulation") or {}).get("error_estimates", []) if isinstance(m, Mapping)]
    goal = budget["goal"]
    lines = [
        "Error budget per row (columns `mc_se_cdf_*`, `disc_err_cdf_*`, in CDF units |F(q_p) - p| at the published "
        "quantile; levels nearest 0.001, 0.5, 0.999 and the max over all levels). Per horizon, over the rows:",
        "",
        "| horizon | fine steps N | max `mc_se_cdf_max` | max `disc_err_cdf_max` | median `disc_err_cdf_max` | "
        f"rows with `disc_err_cdf_max` > {goal:g} |",
        "|---|---|---|---|---|---|",
    ]
    for entry in budget["horizons"]:
        lines.append(
            f"| {entry['horizon']} | {_fmt(entry['steps'])} | {entry['max']['mc_se_cdf_max']:.2e} | "
            f"{entry['max']['disc_err_cdf_max']:.2e} | {entry['median_disc_err_cdf_max']:.2e} | "
            f"{entry['rows_above_goal']} of {entry['rows']} |"
        )
    lines.append("")
    for method in methods or [{}]:
        lines.append(f"- Monte Carlo error: {method.get('mc_se', 'not recorded')}.")
        lines.append(f"- Discretisation error: {method.get('disc_err', 'not recorded')}.")
    share = budget["rows_above_goal"] / max(budget["rows"], 1)
    lines.append(
        f"- Rows whose discretisation error exceeds the {goal:g} goal: {budget['rows_above_goal']} of "
        f"{budget['rows']} ({share:.1%})."
    )
    if name == "rough_bergomi":
        lines.append(
            f"- The {goal:g} goal is not met everywhere for rough Bergomi: where eta is near 3 and H <= 0.1 the "
            "cell-average scheme leaves 1.2e-3 to 2.4e-3 (measured against exact simulation; the earlier hybrid "
            "scheme left up to 1.6e-2) and no affordable grid does better (docs/accuracy.md, sections 4.4 and 4.5); "
            "those rows say so in `disc_err_cdf_max`. Filter on it where accuracy matters."
        )
    return lines


def _sampling_text(record: Mapping[str, Any]) -> str:
    sampler = record["sampler"]
    if isinstance(sampler, Mapping):
        design = f"parameter file `{sampler.get('file')}`"
    else:
        design = f"`{sampler or 'not recorded'}`"
    requested = f", {record['n_samples']} parameter sets requested" if record.get("n_samples") else ""
    return (
        f"- Sampling design: {design}{requested}; {record['param_sets']} parameter sets (param_id "
        f"{record['param_id_range'][0]}–{record['param_id_range'][1]}), {record['rows']} rows."
    )


def _model_section(name: str, record: Mapping[str, Any]) -> list[str]:
    _, module_doc = _model_description(name)
    lines = [f"### `{name}`", ""]
    if record["description"]:
        lines += [record["description"], ""]
    if module_doc:
        lines += ["Equations and discretisation (from the simulating code):", "", "```text", module_doc, "```", ""]
    lines += [
        "| parameter | domain | description | sampled range (config) | observed min – max |",
        "|---|---|---|---|---|",
    ]
    for p in record["parameters"]:
        lo, hi = p["observed_range"]
        lines.append(
            f"| `{p['name']}` | {p.get('bounds', '—')} | {p.get('description', '')} | "
            f"{_config_range(p.get('config'))}{' (model default)' if p.get('config_is_model_default') else ''} | "
            f"{_fmt(lo)} – {_fmt(hi)} |"
        )
    units = model_units(name)
    if units is not None:
        lines += ["", f"**Units.** {units.card}"]
    moments_note = _moments_note(name)
    if moments_note:
        lines += ["", f"**Moments.** {moments_note}"]
    lines += [
        "",
        _sampling_text(record),
        f"- Horizons (model steps): {_fmt(record['horizons'])}.",
        f"- Paths per parameter set (`num_paths`): {_fmt(record['num_paths'])}; seeds: {_fmt(record['seeds'])}.",
        f"- Time step `dt`: {_fmt(record['dt'])}.",
        time_grid_text(name, record),
        *code_lines(record),
        "",
        *_mc_error_table(record["mc_error"]),
        "",
        *error_budget_lines(name, record),
        "",
    ]
    return lines


def _citation_note(provenance: Mapping[str, Any]) -> str:
    versions: list[str] = []
    for record in provenance["models"].values():
        for version in (record.get("simulation") or {}).get("density_engine.code_version", []):
            if version not in versions:
                versions.append(version)
    return "density-engine " + (", ".join(versions) if versions else "(version not recorded)")


def render_card(
    manifests: Sequence[ModelManifest],
    provenance: Mapping[str, Any],
    repo_id: str | None = None,
    tag: str | None = None,
    provenance_sha256: str | None = None,
) -> str:
    """The full README.md text (YAML front matter + body); ``provenance_sha256`` is the digest of provenance.json."""
    front = yaml.safe_dump(card_metadata(manifests), sort_keys=False, allow_unicode=True, width=1000)
    title = pretty_name([m.model for m in manifests])
    repo = repo_id or "<owner>/<dataset>"
    pin = f', revision="{tag}"' if tag else ""
    at = f"@{tag}" if tag else ""
    first = manifests[0].model
    q = manifests[0].num_quantiles
    body = [
        f"# {title}",
        "",
        "Synthetic Monte Carlo data: for each model, parameter set and horizon, the distribution of the simulated "
        f"cumulative log-return summarised by {q} quantiles and four moments. Not market data; not investment advice.",
        "",
        "## What a row is",
        "",
        "One row = one parameter set (`param_id`, with the parameter values as scalar columns) × one horizon "
        "(`horizon`, in model steps). `quantiles` holds the quantiles of the cumulative return X_h over "
        "N = `num_paths` simulated paths (rough models: the log-return log(S_h / S_0); GARCH: the sum of h returns of "
        "unit unconditional variance, see the model's **Units**), sorted ascending (a float32 vector of fixed "
        f"length {q}). Rows are sorted by (`param_id`, `horizon`). Every parameter set has a row for every horizon, "
        "and the param_ids are exactly the configured ones.",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        "| `model` | string | model name (one config per model) |",
        "| `param_id` | int64 | parameter-set id, unique within a model |",
        "| one column per parameter | float64 | parameter values (see the model sections) |",
        "| `horizon` | int32 | horizon in model steps (GARCH: returns; rough models: steps of `dt` years) |",
        f"| `quantiles` | list<float32>[{q}] | quantiles of X_h at levels p_j |",
        "| `mean`, `std`, `skew`, `kurt` | float64 | sample mean, standard deviation, skewness, excess kurtosis "
        "of X_h; NaN where the model has no finite moment of that order (see the model's **Moments**) |",
        "| `num_paths` | int64 | number of simulated paths N |",
        "| `seed` | int64 | base seed of the run |",
        "| `dt` | float64 | model time step in years (null for GARCH) |",
        "| `steps` | int32 | fine steps N of the finest time grid of the horizon (GARCH: the horizon) |",
        "| `mc_se_cdf_p001`, `mc_se_cdf_p50`, `mc_se_cdf_p999`, `mc_se_cdf_max` | float64 | Monte Carlo standard "
        "error of the CDF at the published quantile (CDF units), at the levels nearest 0.001, 0.5, 0.999 and the max "
        "over all levels |",
        "| `disc_err_cdf_p001`, `disc_err_cdf_p50`, `disc_err_cdf_p999`, `disc_err_cdf_max` | float64 | "
        "time-discretisation error of the published quantile in CDF units, same levels (0 for GARCH: exact) |",
        "",
        "## Quantile levels",
        "",
        f"`quantiles[j]` is the estimate of the quantile at level p_j = (j + 0.5) / {q}, j = 0 … {q - 1} "
        f"(from {0.5 / q:.6f} to {1 - 0.5 / q:.6f}): the order statistic with index floor(p_j · N) of the N sorted "
        "simulated values. A CDF is the piecewise-linear interpolation of (quantiles[j], p_j); a density estimate is "
        "(p_{j+1} - p_{j-1}) / (quantiles[j+1] - quantiles[j-1]).",
        "",
        "## Models",
        "",
    ]
    for name, record in provenance["models"].items():
        body += _model_section(name, record)
    body += [
        "## Monte Carlo error",
        "",
        "Each quantile is an order statistic of N independent paths (GARCH, and rough Bergomi on its cell-average "
        "scheme, the default), or a Richardson extrapolant of the order statistics of two time grids (rough Heston; "
        "rough Bergomi on the hybrid scheme), so its standard error is about se_F(p) / f(q_p) and "
        "falls as 1/sqrt(N): se_F is sqrt(p(1-p)/N) for order statistics of N paths and for rough Heston's "
        "independent runs (their path counts keep that promise), and 1.9-2.6 times larger for rough Bergomi's hybrid "
        "scheme with coupled Richardson (measured by "
        "replication; the rows' `mc_se_cdf_*` carry it). Adjacent quantiles are strongly "
        "positively correlated. The first table of each model gives, per horizon, the median over rows at selected "
        "levels. Every row also carries its own error budget: "
        "the Monte Carlo standard error (`mc_se_cdf_*`) and the time-discretisation error of the rough models' grids "
        "(`disc_err_cdf_*`), both in CDF units; the second table of each model summarises them.",
        "",
        "## Reproducibility",
        "",
        "- The code (density-engine version with the hash of its sources, and git commit) and software that simulated "
        "each model's rows are listed in its section, taken from the chunks' metadata.",
        "- Config of the models (their `models:` entries, defaults filled in) sha256: "
        f"`{provenance['models_config_sha256'] or 'not recorded'}`.",
        f"- Seeds: {provenance['seed_policy']}.",
        "- The same record, with the sha256 of every shard, is in `provenance.json`.",
    ]
    if provenance_sha256:
        body.append(PROVENANCE_DIGEST_LINE.format(digest=provenance_sha256))
    body += [
        "",
        "## Loading",
        "",
        (
            f"The snippets read the release `{tag}` (the git tag of this version; drop the pin for the latest data)."
            if tag
            else "Pin a release tag (`revision=`) for reproducible reads."
        ),
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{repo}", "{first}", split="train"{pin})',
        f'q = ds.with_format("numpy")["quantiles"][:]  # numpy array, shape (rows, {q}), float32',
        f'stream = load_dataset("{repo}", "{first}", split="train", streaming=True{pin})',
        "```",
        "",
        "```python",
        "import pandas as pd",
        "",
        f'df = pd.read_parquet("hf://datasets/{repo}{at}/data/{first}/")  # quantiles: numpy arrays of length {q}',
        "```",
        "",
        "```python",
        "import polars as pl",
        "",
        f'df = pl.read_parquet("hf://datasets/{repo}{at}/data/{first}/*.parquet")  # quantiles: Array(Float32, {q})',
        "```",
        "",
        "Each parquet file also describes its columns in the schema's field metadata (quantile levels, units of the "
        "values and of `horizon`, `dt` in years).",
        "",
        "## Files and versioning",
        "",
        "`data/<model>/params-<first>-<last>.parquet`: one shard per fixed `param_id` range (zstd, byte-stream-split "
        "floats, page index), so adding parameter sets only changes the shards they fall in. "
        + (f'This release is tagged `{tag}`; pin it with `revision="{tag}"`.' if tag else "Releases are git tags.")
        + " `provenance.json` holds the machine-readable provenance.",
        "",
        "## Citation",
        "",
        "```bibtex",
        "@misc{density_engine_densities,",
        "  title  = {" + title + "},",
        "  author = {density-engine contributors},",
        f"  note   = {{{_citation_note(provenance)}}},",
        f"  howpublished = {{\\url{{https://huggingface.co/datasets/{repo}}}}}",
        "}",
        "```",
        "",
        "## License",
        "",
        f"Data: {LICENSE.upper()}. Code (density-engine): MIT.",
        "",
    ]
    return f"---\n{front}---\n\n" + "\n".join(body)


def provenance_bytes(provenance: Mapping[str, Any]) -> bytes:
    """The exact bytes of provenance.json (sorted keys, 2-space indent)."""
    return (json.dumps(provenance, indent=2, sort_keys=True) + "\n").encode()


def write_card(
    folder: str | Path,
    manifests: Sequence[ModelManifest],
    config: Mapping[str, Any] | None = None,
    base_dir: str | Path = ".",
) -> tuple[Path, Path]:
    """Write ``README.md`` and ``provenance.json`` into the dataset folder (atomically); return both paths.

    First checks that the folder holds exactly each manifest's shards with their sha256 (a stale manifest, an
    interrupted build or a deleted ``data/`` folder must not produce a card that lists data that is not there) and the
    data against the config (:func:`build_provenance`); nothing is written if a check fails.
    """
    if not manifests:
        raise ValueError("no model manifests: nothing to describe in the dataset card")
    folder = Path(folder)
    ordered = sorted(manifests, key=lambda m: m.model)
    for manifest in ordered:
        verify_shards(folder, manifest)
    hf = dict((config or {}).get("hf") or {})
    provenance = build_provenance(ordered, config, base_dir)
    record = provenance_bytes(provenance)
    readme = folder / "README.md"
    provenance_path = folder / "provenance.json"
    card = render_card(ordered, provenance, hf.get("repo_id"), hf.get("tag"), hashlib.sha256(record).hexdigest())
    write_if_changed(provenance_path, record)
    write_if_changed(readme, card.encode())
    return readme, provenance_path
