"""Paths under the working directory that one layer writes and another reads (kept here so both agree)."""

#: The Vast executor's cost ledger: written by the host pool during and at the end of a run (docs/vast.md, "The cost
#: ledger"), read by the workflow's cost table (report.smk).
VAST_COST_LEDGER = "results/vast/cost_ledger.json"
