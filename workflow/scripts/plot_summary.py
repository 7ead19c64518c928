"""The summary figure: consistency per rat pair over seeds with the paired test, and held-out decoding per rat."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.plots import plot_summary, save_figure

figure = plot_summary(pd.read_parquet(snakemake.input.statistics), snakemake.params.sessions)
save_figure(figure, snakemake.output.png)  # and the .pdf beside it
