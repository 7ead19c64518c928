"""The workflow's plan, beside the science package: which sessions, seeds, splits and fits a config
asks for, every output path (`paths`), and the config assembled and checked (`config`). Standard
library only, since Snakemake's own process imports it (under ``--use-conda`` it has no numpy or
torch); from `cebra_core` it reads only the standard-library facts `cebra_core.sessions.rats`,
`cebra_core.sessions.labels` and `cebra_core.analysis.protocols`. `cebra_core` never imports it.
"""
