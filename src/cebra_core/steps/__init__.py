"""The workflow's steps as plain functions, the top layer: each workflow script reads its named
inputs, calls one function here and writes its named outputs, so the logic is unit-tested without
Snakemake. Each module holds the steps of one conda environment (`data`, `fits`, `analysis`,
`figures`) and imports only what that environment has; `checks` is the sessions checked before any fit.
"""
