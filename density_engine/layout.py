"""Paths under the working directory that one layer writes and another reads (kept here so both agree)."""

#: The Vast executor's cost ledger folder (its --vast-ledger-dir, set in profiles/vast): one file per run, written by
#: the executor and final before the workflow's last remote job is reported (snakemake-executor-plugin-vast
#: docs/further.md, "The cost ledger"); read by the workflow's cost table (report.smk).
VAST_LEDGER_DIR = "results/vast/ledger"

#: Where the merge moves chunks that fail its integrity checks (one folder per model; the next run re-simulates them).
QUARANTINE_DIR = "results/quarantine"
#: Per-chunk files of the workflow, one folder per model (chunk_NNNNN.<key>.<ext>): status and clean read them.
CHUNKS_DIR = "results/chunks"
SPECS_DIR = "results/specs"
SIMULATE_LOGS_DIR = "results/logs/simulate"
SIMULATE_BENCHMARKS_DIR = "results/benchmarks/simulate"
GRID_DIR = "results/grid"
#: The chunk manifest beside each chunk parquet (written by the engine's chunk writer, read by the merge and status):
#: ``chunk_00003.<key>.parquet`` -> ``chunk_00003.<key>.manifest.json``.
CHUNK_MANIFEST_SUFFIX = ".manifest.json"
