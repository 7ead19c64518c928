"""The two consistency heatmaps (single- vs multi-session) of the first seed, from the consistency table."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.plots import plot_consistency_comparison, save_figure

table = pd.read_parquet(snakemake.input[0])
table = table[table["seed"] == snakemake.params.seed]
panels = []
for kind in ("single", "multi"):
    part = table[table["kind"] == kind]
    panels.append((part["score"].to_numpy(), part[["source", "target"]].to_numpy(), list(snakemake.params.sessions)))
figure = plot_consistency_comparison(*panels)
save_figure(figure, snakemake.output.png)  # and the .pdf beside it
