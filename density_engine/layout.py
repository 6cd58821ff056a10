"""Paths under the working directory that one layer writes and another reads (kept here so both agree)."""

#: The Vast executor's cost ledger folder (its --vast-ledger-dir, set in profiles/vast): one file per run, written by
#: the executor and final before the workflow's last remote job is reported (snakemake-executor-plugin-vast
#: docs/further.md, "The cost ledger"); read by the workflow's cost table (report.smk).
VAST_LEDGER_DIR = "results/vast/ledger"
