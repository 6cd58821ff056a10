#!/usr/bin/env bash
# Snakemake runs this in the freshly created conda environment (--sdm conda): it installs density-engine itself,
# pinned to the workflow's version and without dependencies (the environment file lists exactly what the rules need).
# Before that version is on PyPI, point DENSITY_ENGINE_SOURCE at a checkout of the same version (or a wheel, or a
# pip URL), e.g. `DENSITY_ENGINE_SOURCE=$PWD snakemake --sdm conda ...` from the repository root.
set -euo pipefail
version=0.1.0
python -m pip install --no-deps --no-input "${DENSITY_ENGINE_SOURCE:-density-engine==$version}"
python -c "import density_engine as d, sys; sys.exit(None if d.__version__ == '$version' else 'density-engine ' + d.__version__ + ' installed, the workflow needs $version')"
