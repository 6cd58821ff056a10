"""Tests of the dataset stage: build, card, publishing against a fake Hub, Snakemake rules."""
