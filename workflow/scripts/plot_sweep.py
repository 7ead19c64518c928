"""A sweep's figure: each measure against each grid parameter, mean ± sd over seeds."""

from common import start

start(snakemake)

import pandas as pd

from cebra_core.plots import plot_sweep, save_figure

figure = plot_sweep(pd.read_parquet(snakemake.input.table), snakemake.params.grid_keys)
save_figure(figure, snakemake.output.png)  # and the .pdf beside it
