# density-engine runtime image for GPU hosts and clusters: a CUDA build of PyTorch and density-engine, whose CLI is
# what every rule of the workflow runs. Build it from the repository root and push it where the hosts can pull it:
#   docker build -t ghcr.io/<you>/density-engine:0.1.0 .
#   docker push ghcr.io/<you>/density-engine:0.1.0
#   snakemake --profile profiles/slurm --sdm apptainer --config container=docker://ghcr.io/<you>/density-engine:0.1.0
# Building needs no GPU; at run time `apptainer --nv` (Snakemake: --apptainer-args "--nv") or `docker run --gpus all`
# exposes the host's NVIDIA driver. The torch wheels bring their own CUDA runtime, so a slim Python base is enough.
FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="density-engine" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="Monte Carlo return densities of stochastic-volatility models (PyTorch, CUDA)" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch FIRST, from PyTorch's CUDA index: installing density-engine afterwards keeps it (pyproject: torch>=2.3) instead
# of resolving torch from PyPI. Another CUDA version: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN python -m pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# What the wheels are built from: the Vast executor plugin (a dependency of density-engine, its own distribution in
# this repository, not on PyPI) and density-engine (pyproject.toml: [tool.hatch.build.targets.wheel] packages, readme,
# license).
WORKDIR /opt/density-engine
COPY snakemake-executor-plugin-vast ./snakemake-executor-plugin-vast
COPY pyproject.toml README.md LICENSE ./
COPY density_engine ./density_engine
RUN python -m pip install --no-cache-dir ./snakemake-executor-plugin-vast . \
    && density-engine --version \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

WORKDIR /work
CMD ["density-engine", "--help"]
