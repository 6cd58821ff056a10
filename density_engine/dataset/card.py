"""The dataset card (``README.md`` with YAML front matter) and ``provenance.json`` of the dataset folder.

Both are deterministic functions of the model manifests, the workflow config and the code version: no timestamps, so
re-building unchanged data gives byte-identical files and publishing them again makes no commit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from density_engine import __version__
from density_engine.dataset.shards import ModelManifest, write_if_changed

LICENSE = "cc-by-4.0"
PRETTY_NAME = "Simulated return densities of stochastic-volatility models (GJR-GARCH, rough Heston, rough Bergomi)"
TAGS = ["finance", "stochastic-volatility", "simulation", "synthetic", "quantiles", "monte-carlo", "rough-volatility"]
DEFAULT_CONFIG = "gjrgarch_normalized"
SOFTWARE_PACKAGES = ("numpy", "scipy", "pyarrow", "pandas", "torch", "datasets", "huggingface_hub", "snakemake")
PROVENANCE_VERSION = 1
GIT_COMMIT_ENV = "DENSITY_ENGINE_GIT_COMMIT"
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


def _project_url() -> str | None:
    """The package's source URL from its metadata (``[project.urls]``), if it declares one."""
    try:
        urls = importlib.metadata.metadata("density-engine").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return urls[0].split(",", 1)[1].strip() if urls else None


def code_version() -> dict[str, Any]:
    """Package version and git commit of the code building the dataset (``DENSITY_ENGINE_GIT_COMMIT`` overrides)."""
    info: dict[str, Any] = {"package": "density-engine", "version": __version__, "url": _project_url()}
    override = os.environ.get(GIT_COMMIT_ENV)
    if override:
        info["git_commit"] = override
        return info
    source_dir = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source_dir, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = "unknown"
        return info
    info["git_commit"] = commit
    info["git_dirty"] = bool(dirty)
    return info


def software_versions() -> dict[str, str]:
    """Versions of Python and the packages that build, read and publish the dataset."""
    versions = {"python": platform.python_version()}
    for package in SOFTWARE_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def config_digest(config: Mapping[str, Any] | None) -> str | None:
    """sha256 of the config's canonical JSON (sorted keys), ``hf`` section excluded (it does not change the data)."""
    if config is None:
        return None
    relevant = {key: value for key, value in config.items() if key != "hf"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def _model_description(model: str) -> tuple[dict[str, Any] | None, str]:
    """``Model.describe()`` and the model module's docstring (equations and scheme), if the model is registered."""
    try:
        from density_engine.models import get_model_class

        model_class = get_model_class(model)
    except (KeyError, ImportError):
        return None, ""
    module_doc = sys.modules[model_class.__module__].__doc__ or ""
    return model_class.describe(), module_doc.strip()


def build_provenance(manifests: Sequence[ModelManifest], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The machine-readable provenance record (also embedded, in prose, in the card)."""
    models: dict[str, Any] = {}
    for manifest in manifests:
        model_config = dict((config or {}).get("models", {}).get(manifest.model, {}))
        description, _ = _model_description(manifest.model)
        declared = {p["name"]: p for p in (description or {}).get("parameters", [])}
        if description is not None and list(declared) != manifest.parameter_names:
            raise ValueError(
                f"model {manifest.model!r}: the data has parameter columns {manifest.parameter_names}, but the model "
                f"declares {list(declared)} (data from {manifest.sources[:3]})"
            )
        parameters = []
        for name in manifest.parameter_names:
            entry: dict[str, Any] = {"name": name, "observed_range": manifest.parameter_ranges[name]}
            if name in declared:
                entry.update(
                    bounds=declared[name]["bounds"],
                    description=declared[name]["description"],
                    default_range=declared[name]["default_range"],
                )
            configured = model_config.get("parameters") or {}
            if name in configured:
                entry["config"] = configured[name]
            elif model_config and name in declared:
                # omitted from the config: the workflow samples the model's default range
                entry["config"] = declared[name]["default_range"]
                entry["config_is_model_default"] = True
            parameters.append(entry)
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
            "substeps": manifest.substeps,
            "sampler": model_config.get("sampler"),
            "n_samples": model_config.get("n_samples"),
            "parameters": parameters,
            "mc_error": manifest.mc_error,
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
        "code": code_version(),
        "software": software_versions(),
        "config_sha256": config_digest(config),
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
        "pretty_name": PRETTY_NAME,
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
    lines += [
        "",
        f"- Sampling design: `{record['sampler'] or 'not recorded'}`"
        + (f", {record['n_samples']} parameter sets requested" if record.get("n_samples") else "")
        + f"; {record['param_sets']} parameter sets (param_id {record['param_id_range'][0]}–"
        f"{record['param_id_range'][1]}), {record['rows']} rows.",
        f"- Horizons (model steps): {_fmt(record['horizons'])}.",
        f"- Paths per parameter set (`num_paths`): {_fmt(record['num_paths'])}; seeds: {_fmt(record['seeds'])}.",
        f"- Time step `dt`: {_fmt(record['dt'])}; fine substeps per model step: {_fmt(record['substeps'])}.",
    ]
    simulation = record.get("simulation") or {}
    if simulation:
        lines.append(
            "- Simulated with: "
            + "; ".join(f"{key} = {json.dumps(value, sort_keys=True)}" for key, value in sorted(simulation.items()))
            + "."
        )
    lines += [
        "",
        "Monte Carlo standard error of the quantiles (median over rows; "
        "sd(q̂_p) ≈ sqrt(p(1-p)/N) / f(q_p), f from adjacent quantiles in normal-score coordinates):",
        "",
        "| level p | median s.e. (log-return) | median s.e. / std |",
        "|---|---|---|",
    ]
    for level in record["mc_error"]["levels"]:
        lines.append(f"| {level['level']:.6f} | {_fmt(level['median_se'])} | {_fmt(level['median_se_over_std'])} |")
    lines.append("")
    return lines


def render_card(
    manifests: Sequence[ModelManifest],
    provenance: Mapping[str, Any],
    repo_id: str | None = None,
    tag: str | None = None,
) -> str:
    """The full README.md text (YAML front matter + body)."""
    front = yaml.safe_dump(card_metadata(manifests), sort_keys=False, allow_unicode=True, width=1000)
    repo = repo_id or "<owner>/<dataset>"
    pin = f', revision="{tag}"' if tag else ""
    first = manifests[0].model
    q = manifests[0].num_quantiles
    code = provenance["code"]
    software = provenance["software"]
    body = [
        f"# {PRETTY_NAME}",
        "",
        "Synthetic Monte Carlo data: for each model, parameter set and horizon, the distribution of the simulated "
        f"cumulative log-return summarised by {q} quantiles and four moments. Not market data; not investment advice.",
        "",
        "## What a row is",
        "",
        "One row = one parameter set (`param_id`, with the parameter values as scalar columns) × one horizon "
        "(`horizon`, in model steps). `quantiles` holds the quantiles of the cumulative log-return "
        "X_h = log(S_h / S_0) over N = `num_paths` simulated paths, sorted ascending (a float32 vector of fixed "
        f"length {q}). Rows are sorted by (`param_id`, `horizon`).",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        "| `model` | string | model name (one config per model) |",
        "| `param_id` | int64 | parameter-set id, unique within a model |",
        "| one column per parameter | float64 | parameter values (see the model sections) |",
        "| `horizon` | int32 | horizon in model steps (GARCH: returns; rough models: steps of `dt` years) |",
        f"| `quantiles` | list<float32>[{q}] | quantiles of X_h at levels p_j |",
        "| `mean`, `std`, `skew`, `kurt` | float64 | sample mean, standard deviation, skewness, excess kurtosis "
        "of X_h |",
        "| `num_paths` | int64 | number of simulated paths N |",
        "| `seed` | int64 | base seed of the run |",
        "| `dt` | float64 | model time step in years (null for GARCH) |",
        "| `substeps` | int32 | fine simulation steps per model step |",
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
        "Each quantile is an order statistic of N independent paths, so its standard error is about "
        "sqrt(p(1-p)/N) / f(q_p) and falls as 1/sqrt(N); adjacent quantiles are strongly positively correlated. The "
        "tables above give the median over rows at selected levels. For the rough models the numbers describe the "
        "*discretised* model at the stated `dt` and `substeps`: discretisation bias (largest in the tails) is not "
        "included.",
        "",
        "## Reproducibility",
        "",
        f"- Code: density-engine {code['version']}, git commit `{code['git_commit']}`"
        + (" (with uncommitted changes)" if code.get("git_dirty") else "")
        + (f", {code['url']}." if code.get("url") else "."),
        "- Software: " + ", ".join(f"{k} {v}" for k, v in software.items()) + ".",
        f"- Workflow config sha256 (without the `hf` section): `{provenance['config_sha256'] or 'not recorded'}`.",
        f"- Seeds: {provenance['seed_policy']}.",
        "- The same record, with the sha256 of every shard, is in `provenance.json`.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{repo}", "{first}", split="train"{pin})',
        'q = ds.with_format("numpy")["quantiles"]   # (rows, ' + str(q) + ") float32",
        f'stream = load_dataset("{repo}", "{first}", split="train", streaming=True{pin})',
        "```",
        "",
        "```python",
        "import pandas as pd",
        "",
        f'df = pd.read_parquet("hf://datasets/{repo}/data/{first}/")  # quantiles: numpy arrays of length {q}',
        "```",
        "",
        "```python",
        "import polars as pl",
        "",
        f'df = pl.read_parquet("hf://datasets/{repo}/data/{first}/*.parquet")  # quantiles: Array(Float32, {q})',
        "```",
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
        "  title  = {" + PRETTY_NAME + "},",
        "  author = {density-engine contributors},",
        f"  note   = {{density-engine {code['version']}, commit {code['git_commit']}}},",
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


def write_card(
    folder: str | Path,
    manifests: Sequence[ModelManifest],
    config: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``README.md`` and ``provenance.json`` into the dataset folder (atomically); return both paths."""
    if not manifests:
        raise ValueError("no model manifests: nothing to describe in the dataset card")
    ordered = sorted(manifests, key=lambda m: m.model)
    hf = dict((config or {}).get("hf") or {})
    provenance = build_provenance(ordered, config)
    folder = Path(folder)
    readme = folder / "README.md"
    provenance_path = folder / "provenance.json"
    write_if_changed(provenance_path, (json.dumps(provenance, indent=2, sort_keys=True) + "\n").encode())
    write_if_changed(readme, render_card(ordered, provenance, hf.get("repo_id"), hf.get("tag")).encode())
    return readme, provenance_path
